//! A strict YAML loader for configuration files that may hold security settings and secrets.
//!
//! yaml_serde alone does three things that are wrong for such a file:
//!
//! - Deserialised into a `BTreeMap` or a `serde_json::Value`, the *last* of two equal keys wins,
//!   silently: a second `basic_auth_users:` replaces the first and can turn auth off. (Its own
//!   `Value`/`Mapping` refuse duplicates, but without saying where, and by then the numbers are
//!   numbers: see the next point.)
//! - Read through a `serde_json::Value`, `X-XSS-Protection: 1` is the number 1, so a field that
//!   wants a string refuses it. Go's YAML gives a string field the text as written.
//! - Its type errors quote the value (`invalid type: string "hunter2"`), which may be a secret.
//!
//! So a file is read in two passes over yaml_serde's events: the first learns each value's
//! shape (mapping, sequence or scalar, and what a plain scalar would mean: null, bool, number
//! or text), the second, guided by those shapes, reads every scalar as the text it was written
//! with and refuses duplicate keys by their path. The resulting tree is deserialised by a
//! deserializer of our own, whose errors name the key path and the kind of value found, never
//! the value. (Messages a target type makes itself with `de::Error::custom` are kept as they
//! are: types read with this module must not put values in them.)

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer as _, EnumAccess, Expected, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};

/// What is wrong and where: a key path such as `tls_server_config.cert_file` (empty for the
/// whole document). One line, and never a value from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// `None` until the deserializer attaches the path of the value being read.
    path: Option<String>,
    message: String,
}

impl Error {
    fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.to_owned()),
            message: message.into(),
        }
    }

    /// The key path of the offending value; empty for the document itself.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("")
    }

    /// What is wrong, without the path.
    pub fn message(&self) -> String {
        one_line(&self.message)
    }

    /// Attaches `path` unless a deeper value already did.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            "" => f.write_str(&self.message()),
            path => write!(f, "{}: {}", one_line(path), self.message()),
        }
    }
}

impl std::error::Error for Error {}

fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            path: None,
            message: message.to_string(),
        }
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        de::Error::custom(format_args!(
            "expected {}, found {}",
            expectation(expected),
            kind(unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        de::Error::custom(format_args!(
            "invalid value ({}): expected {}",
            kind(unexpected),
            expectation(expected)
        ))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        de::Error::custom(format_args!("not one of {}", expected.join(", ")))
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        // The key is the last part of the path this error gets.
        match expected {
            [] => de::Error::custom("unknown key: none is accepted here"),
            _ => de::Error::custom(format_args!(
                "unknown key, expected one of {}",
                expected.join(", ")
            )),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        de::Error::custom(format_args!("{field} is missing"))
    }
}

/// The kind of a value, never the value.
fn kind(unexpected: Unexpected) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "nothing (null)",
        Unexpected::Seq => "a sequence",
        Unexpected::Map => "a mapping",
        Unexpected::Option | Unexpected::NewtypeStruct | Unexpected::Other(_) => "a value",
        Unexpected::Enum
        | Unexpected::UnitVariant
        | Unexpected::NewtypeVariant
        | Unexpected::TupleVariant
        | Unexpected::StructVariant => "a tagged value",
    }
}

/// What the target type wanted, in YAML's words rather than Rust's (`struct File`).
fn expectation(expected: &dyn Expected) -> String {
    let text = expected.to_string();
    if text.starts_with("struct ") || text == "a map" {
        "a mapping".into()
    } else if text.starts_with("enum ") {
        "a name".into()
    } else {
        text
    }
}

/// Reads `text` into `T`. Duplicate keys are refused at any depth; scalars are read as the text
/// they were written with wherever `T` wants a string; an empty document is an empty mapping
/// to a struct or map and null to a `serde_json::Value`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    let node = load(text)?;
    T::deserialize(Value {
        node: &node,
        path: String::new(),
    })
    .map_err(|err| err.at(""))
}

/// Reads `text` into a `serde_json::Value`, refusing duplicate keys. Plain scalars keep their
/// YAML meaning here (`1` is a number); use [`from_str`] into a typed struct to read them as
/// strings where strings are wanted.
pub fn parse(text: &str) -> Result<serde_json::Value, Error> {
    from_str(text)
}

/// A YAML document, every scalar with the text it was written with.
#[derive(Debug)]
enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Scalar, Node)>),
}

#[derive(Debug)]
struct Scalar {
    /// As written (after YAML's quoting and escapes); empty for null.
    text: String,
    /// What it means as plain YAML, for targets that take any value.
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text,
}

/// The structure of a document, as learnt by the first pass.
enum Shape {
    Scalar(Kind),
    Seq(Vec<Shape>),
    Map(Vec<(Shape, Shape)>),
}

fn load(text: &str) -> Result<Node, Error> {
    let shape =
        Shape::deserialize_from(yaml_serde::Deserializer::from_str(text)).map_err(from_yaml)?;
    // An empty document has no event to read text from.
    if let Shape::Scalar(Kind::Null) = shape {
        return Ok(Node::Scalar(Scalar {
            text: String::new(),
            kind: Kind::Null,
        }));
    }
    let refused = RefCell::new(None);
    let guided = Guided {
        shape: &shape,
        path: String::new(),
        refused: &refused,
    };
    let node = guided.deserialize(yaml_serde::Deserializer::from_str(text));
    // An error of our own was stashed; yaml_serde only carries a placeholder for it.
    if let Some(err) = refused.into_inner() {
        return Err(err);
    }
    node.map_err(from_yaml)
}

/// yaml_serde's own errors: syntax errors from libyaml, limits, and the type errors of the first
/// pass (a scalar that does not match its `!!int`-style tag), which quote the value.
fn from_yaml(err: yaml_serde::Error) -> Error {
    let message = err.to_string();
    // libyaml's messages are fixed texts; serde's type errors quote values in "" or ``.
    if !message.contains(['"', '`', '\'']) {
        return Error::new("", message);
    }
    let at = err
        .location()
        .map(|at| format!(" at line {} column {}", at.line(), at.column()))
        .unwrap_or_default();
    Error::new("", format!("a value does not match its YAML tag{at}"))
}

impl Shape {
    fn deserialize_from<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::deserialize_from(deserializer)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Null))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Bool(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Unsigned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Signed(v)))
    }

    // Too large for 64 bits: kept as text rather than rounded.
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Text))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Text))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Float(v)))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar(Kind::Text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Shape::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Shape::Map(entries))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, _: A) -> Result<Shape, A::Error> {
        Err(de::Error::custom(
            "YAML tags such as !name are not supported",
        ))
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The second pass: reads the value `shape` describes, scalars as text.
struct Guided<'a> {
    shape: &'a Shape,
    path: String,
    /// Where an error of ours waits, since yaml_serde would decorate it with its own path.
    refused: &'a RefCell<Option<Error>>,
}

impl Guided<'_> {
    fn refuse<E: de::Error>(&self, err: Error) -> E {
        let message = err.message.clone();
        self.refused.borrow_mut().get_or_insert(err);
        E::custom(message)
    }
}

impl<'de> DeserializeSeed<'de> for Guided<'_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        match self.shape {
            Shape::Scalar(kind) => {
                let text = deserializer.deserialize_str(TextVisitor)?;
                let text = match kind {
                    // Go's YAML reads null as the empty string where a string is wanted.
                    Kind::Null => String::new(),
                    _ => text,
                };
                Ok(Node::Scalar(Scalar { text, kind: *kind }))
            }
            Shape::Seq(_) => deserializer.deserialize_seq(self),
            Shape::Map(_) => deserializer.deserialize_map(self),
        }
    }
}

impl<'de> Visitor<'de> for Guided<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the value the first pass saw")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let Shape::Seq(shapes) = self.shape else {
            return Err(self.refuse(Error::new(&self.path, "changed between passes")));
        };
        let mut items = Vec::with_capacity(shapes.len());
        for (index, shape) in shapes.iter().enumerate() {
            let item = seq.next_element_seed(Guided {
                shape,
                path: format!("{}[{index}]", self.path),
                refused: self.refused,
            })?;
            match item {
                Some(item) => items.push(item),
                None => return Err(self.refuse(Error::new(&self.path, "changed between passes"))),
            }
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Shape::Map(shapes) = self.shape else {
            return Err(self.refuse(Error::new(&self.path, "changed between passes")));
        };
        let mut seen = HashSet::with_capacity(shapes.len());
        let mut entries = Vec::with_capacity(shapes.len());
        for (key_shape, value_shape) in shapes {
            let Shape::Scalar(kind) = key_shape else {
                return Err(self.refuse(Error::new(
                    &self.path,
                    "a key is a mapping or a sequence; keys must be plain values",
                )));
            };
            let Some(text) = map.next_key_seed(TextSeed)? else {
                return Err(self.refuse(Error::new(&self.path, "changed between passes")));
            };
            let text = match kind {
                Kind::Null => String::new(),
                _ => text,
            };
            let path = child(&self.path, &text);
            if !seen.insert(text.clone()) {
                return Err(self.refuse(Error::new(&path, "given twice")));
            }
            let value = map.next_value_seed(Guided {
                shape: value_shape,
                path,
                refused: self.refused,
            })?;
            entries.push((Scalar { text, kind: *kind }, value));
        }
        Ok(Node::Map(entries))
    }
}

struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

/// Deserialises a [`Node`], attaching `path` to the errors of the value it reads.
struct Value<'a> {
    node: &'a Node,
    path: String,
}

impl Value<'_> {
    fn null(&self) -> bool {
        matches!(
            self.node,
            Node::Scalar(Scalar {
                kind: Kind::Null,
                ..
            })
        )
    }
}

impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.node {
            Node::Scalar(scalar) => match scalar.kind {
                Kind::Null => visitor.visit_unit(),
                Kind::Bool(v) => visitor.visit_bool(v),
                Kind::Unsigned(v) => visitor.visit_u64(v),
                Kind::Signed(v) => visitor.visit_i64(v),
                Kind::Float(v) => visitor.visit_f64(v),
                Kind::Text => visitor.visit_str(&scalar.text),
            },
            Node::Seq(items) => visitor.visit_seq(Items::new(items, &self.path)),
            Node::Map(entries) => visitor.visit_map(Entries::new(entries, &self.path)),
        };
        result.map_err(|err| err.at(&self.path))
    }

    /// Any scalar as written, as Go's YAML gives a string field: `X-XSS-Protection: 1` is "1".
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Scalar(scalar) => visitor
                .visit_str::<Error>(&scalar.text)
                .map_err(|err| err.at(&self.path)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.null() {
            visitor
                .visit_none::<Error>()
                .map_err(|err| err.at(&self.path))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// Null is an empty sequence, as in Go.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.null() {
            return visitor
                .visit_seq(Items::new(&[], &self.path))
                .map_err(|err| err.at(&self.path));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    /// Null is an empty mapping, as in Go: an empty file or `key:` with nothing under it.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.null() {
            return visitor
                .visit_map(Entries::new(&[], &self.path))
                .map_err(|err| err.at(&self.path));
        }
        self.deserialize_any(visitor)
    }

    /// Only a mapping (or null): serde would also take a sequence of the fields in order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.node {
            Node::Seq(_) => {
                Err(<Error as de::Error>::invalid_type(Unexpected::Seq, &visitor).at(&self.path))
            }
            _ => self.deserialize_map(visitor),
        }
    }

    /// A unit variant is a scalar (`client_auth_type: NoClientCert`); a variant with data is a
    /// mapping of one key.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let access = match self.node {
            Node::Scalar(scalar) => Variant {
                name: scalar,
                value: None,
                path: self.path.clone(),
            },
            Node::Map(entries) if entries.len() == 1 => Variant {
                name: &entries[0].0,
                value: Some(&entries[0].1),
                path: child(&self.path, &entries[0].0.text),
            },
            _ => return self.deserialize_any(visitor),
        };
        visitor.visit_enum(access).map_err(|err| err.at(&self.path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 bytes byte_buf unit unit_struct
    }
}

struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: String,
}

impl<'a> Items<'a> {
    fn new(items: &'a [Node], path: &str) -> Self {
        Self {
            items: items.iter().enumerate(),
            path: path.to_owned(),
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((index, node)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(Value {
            node,
            path: format!("{}[{index}]", self.path),
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (Scalar, Node)>,
    path: String,
    /// The value of the key just read, and its path.
    value: Option<(&'a Node, String)>,
}

impl<'a> Entries<'a> {
    fn new(entries: &'a [(Scalar, Node)], path: &str) -> Self {
        Self {
            entries: entries.iter(),
            path: path.to_owned(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = child(&self.path, &key.text);
        let key = seed
            .deserialize(KeyValue(key))
            .map_err(|err| err.at(&path))?;
        self.value = Some((value, path));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (node, path) = self
            .value
            .take()
            .ok_or_else(|| Error::new(&self.path, "a value was read before its key"))?;
        seed.deserialize(Value { node, path })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A mapping key: text where a string is wanted, its YAML meaning otherwise.
struct KeyValue<'a>(&'a Scalar);

impl<'de> de::Deserializer<'de> for KeyValue<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(v) => visitor.visit_bool(v),
            Kind::Unsigned(v) => visitor.visit_u64(v),
            Kind::Signed(v) => visitor.visit_i64(v),
            Kind::Float(v) => visitor.visit_f64(v),
            Kind::Text => visitor.visit_str(&self.0.text),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(&self.0.text)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(Variant {
            name: self.0,
            value: None,
            path: String::new(),
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option unit
        unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

struct Variant<'a> {
    name: &'a Scalar,
    value: Option<&'a Node>,
    path: String,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let variant = seed.deserialize(KeyValue(self.name))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None => Ok(()),
            Some(node) => de::Deserialize::deserialize(Value {
                node,
                path: self.path,
            }),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(node) => seed.deserialize(Value {
                node,
                path: self.path,
            }),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a mapping of one key",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(node) => Value {
                node,
                path: self.path,
            }
            .deserialize_seq(visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a mapping of one key",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(node) => Value {
                node,
                path: self.path,
            }
            .deserialize_map(visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a mapping of one key",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        users: BTreeMap<String, String>,
        #[serde(default)]
        enabled: Option<bool>,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Mode {
        Plain,
        Strict,
    }

    fn settings(text: &str) -> Result<Settings, String> {
        from_str(text).map_err(|err| err.to_string())
    }

    #[test]
    fn a_duplicate_key_at_the_top_is_refused_by_name() {
        let message = settings("users: {a: x}\nheaders: {}\nusers: {}\n").unwrap_err();
        assert_eq!(message, "users: given twice");
    }

    #[test]
    fn a_duplicate_key_deeper_down_is_refused_by_its_path() {
        let message = settings("users:\n  prometheus: one\n  grafana: two\n  prometheus: three\n")
            .unwrap_err();
        assert_eq!(message, "users.prometheus: given twice");
        let message = parse("a:\n  - b: {c: 1, c: 2}\n").unwrap_err().to_string();
        assert_eq!(message, "a[0].b.c: given twice");
    }

    #[test]
    fn keys_written_differently_but_reading_the_same_are_duplicates() {
        let message = settings("users: {'1': x, 1: y}\n").unwrap_err();
        assert_eq!(message, "users.1: given twice");
    }

    #[test]
    fn yaml_serde_lets_the_last_duplicate_win_in_a_serde_json_value() {
        // Why this module exists: without it the second key silently wins.
        let value: serde_json::Value = yaml_serde::from_str("a: 1\na: 2\n").unwrap();
        assert_eq!(value, json!({"a": 2}));
        // Its own Value refuses, but names no path, and a nested value is not named at all.
        let err = yaml_serde::from_str::<yaml_serde::Value>("a: {b: 1, b: 2}\n").unwrap_err();
        assert!(!err.to_string().contains("a.b"), "{err}");
    }

    #[test]
    fn unquoted_scalars_are_strings_where_strings_are_wanted() {
        let parsed = settings(
            "headers:\n  X-XSS-Protection: 1\n  X-Other: 1.10\n  X-Flag: true\n  X-Empty:\nusers:\n  007: 0x1F\n",
        )
        .unwrap();
        assert_eq!(parsed.headers["X-XSS-Protection"], "1");
        assert_eq!(
            parsed.headers["X-Other"], "1.10",
            "written, not re-formatted"
        );
        assert_eq!(parsed.headers["X-Flag"], "true");
        assert_eq!(parsed.headers["X-Empty"], "");
        assert_eq!(parsed.users["007"], "0x1F");
    }

    #[test]
    fn scalars_keep_their_yaml_meaning_where_any_value_is_taken() {
        let value = parse("n: 1\nf: 1.5\nb: true\ns: '1'\nz: ~\nl: [a, 2]\n").unwrap();
        assert_eq!(
            value,
            json!({"n": 1, "f": 1.5, "b": true, "s": "1", "z": null, "l": ["a", 2]})
        );
        let parsed = settings("enabled: true\nport: 9866\nmode: Strict\n").unwrap();
        assert_eq!(parsed.enabled, Some(true));
        assert_eq!(parsed.port, Some(9866));
        assert_eq!(parsed.mode, Some(Mode::Strict));
    }

    #[test]
    fn an_empty_document_is_an_empty_mapping_or_null() {
        assert_eq!(settings("").unwrap(), settings("{}").unwrap());
        assert_eq!(
            settings("# nothing here\n").unwrap(),
            settings("{}").unwrap()
        );
        assert_eq!(parse("").unwrap(), serde_json::Value::Null);
        assert_eq!(settings("headers:\n").unwrap().headers, BTreeMap::new());
    }

    #[test]
    fn anchors_and_aliases_are_followed() {
        let parsed = settings("headers: &h {A: x}\nusers: *h\n").unwrap();
        assert_eq!(parsed.users["A"], "x");
    }

    #[test]
    fn errors_name_the_path_and_the_kind_but_never_the_value() {
        let secret = "hunter2-s3cr3t";
        for (text, path) in [
            (secret.to_owned(), ""),
            (format!("enabled: {secret}"), "enabled"),
            (format!("port: {secret}"), "port"),
            ("port: 70000".to_owned(), "port"),
            (format!("mode: {secret}"), "mode"),
            (format!("headers: {secret}"), "headers"),
            (format!("users: [{secret}]"), "users"),
            (format!("{secret}: 1"), secret),
            (format!("enabled: !!bool {secret}"), ""),
            (format!("enabled: !{secret} x"), ""),
            (format!("users: {{a: '{secret}\n"), ""),
            (format!("- {secret}"), ""),
        ] {
            let err = from_str::<Settings>(&text).unwrap_err();
            let message = err.to_string();
            assert_eq!(err.path(), path, "{message}");
            // A key is a name and may be named; a value never.
            let shown = message
                .strip_prefix(&format!("{path}: "))
                .unwrap_or(&message);
            assert!(!shown.contains(secret), "{text:?} gave {message:?}");
            assert!(!shown.contains("70000"), "{text:?} gave {message:?}");
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn type_errors_say_what_was_expected_in_yaml_terms() {
        assert_eq!(
            settings("just text").unwrap_err(),
            "expected a mapping, found a string"
        );
        assert_eq!(
            settings("enabled: maybe").unwrap_err(),
            "enabled: expected a boolean, found a string"
        );
        assert_eq!(
            settings("mode: Loose").unwrap_err(),
            "mode: not one of Plain, Strict"
        );
        assert_eq!(
            settings("colour: red").unwrap_err(),
            "colour: unknown key, expected one of headers, users, enabled, port, mode"
        );
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let message = settings("users:\n  a: b\n c: d\n").unwrap_err();
        assert!(message.contains("line 3"), "{message}");
    }
}
