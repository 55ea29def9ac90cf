//! A panic, should one ever happen, is logged through `tracing`: in JSON logs it is one JSON
//! object like every other line, not a raw message that breaks the log shipper's parser.
//! Its own test binary, since it installs the process-wide subscriber and panic hook.

use std::io::Write;
use std::sync::{Arc, Mutex};

use saldo_exporter::telemetry::{self, LogFormat};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_one_json_log_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    telemetry::init_with_writer("info", LogFormat::Json, move || writer.clone(), false);

    let result = std::panic::catch_unwind(|| panic!("kaboom {}", 42));
    assert!(result.is_err());

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
    assert_eq!(event["level"], "ERROR");
    assert_eq!(event["message"], "panic");
    assert_eq!(event["panic"], "kaboom 42");
    assert!(
        event["location"]
            .as_str()
            .unwrap()
            .starts_with("tests/panic_log.rs:"),
        "{event}"
    );
}
