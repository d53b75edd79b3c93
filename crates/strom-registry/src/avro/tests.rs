//! Avro's resolution rules, case by case (schemas written for these tests).

use super::*;

fn schema(text: &str) -> AvroSchema {
    AvroSchema::parse(text, &[]).unwrap()
}

fn record(fields: &str) -> AvroSchema {
    schema(&format!(
        r#"{{"type":"record","name":"R","namespace":"n","fields":[{fields}]}}"#
    ))
}

/// The kinds found when `reader` reads `writer`.
fn kinds(reader: &AvroSchema, writer: &AvroSchema) -> Vec<IncompatibilityKind> {
    reader_incompatibilities(reader, writer)
        .iter()
        .map(|i| i.kind)
        .collect()
}

const A: &str = r#"{"name":"a","type":"int"}"#;
const B_DEFAULT: &str = r#"{"name":"b","type":"string","default":"x"}"#;
const B: &str = r#"{"name":"b","type":"string"}"#;

#[test]
fn a_field_added_with_a_default_reads_both_ways() {
    let (old, new) = (record(A), record(&format!("{A},{B_DEFAULT}")));
    assert!(kinds(&new, &old).is_empty());
    assert!(kinds(&old, &new).is_empty(), "a writer-only field is skipped");
}

#[test]
fn a_field_added_without_a_default_cannot_read_old_data() {
    let (old, new) = (record(A), record(&format!("{A},{B}")));
    let found = reader_incompatibilities(&new, &old);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, IncompatibilityKind::ReaderFieldMissingDefaultValue);
    assert_eq!(found[0].location, "/fields/1");
    assert_eq!(found[0].additional_info, "b");
    assert!(found[0]
        .to_string()
        .starts_with("{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE'"));
    assert!(kinds(&old, &new).is_empty(), "old readers skip it: forward compatible");
}

#[test]
fn a_renamed_field_reads_through_its_alias() {
    let old = record(A);
    let renamed = record(r#"{"name":"c","type":"int","aliases":["a"]}"#);
    assert!(kinds(&renamed, &old).is_empty());
    let unaliased = record(r#"{"name":"c","type":"int"}"#);
    assert_eq!(
        kinds(&unaliased, &old),
        vec![IncompatibilityKind::ReaderFieldMissingDefaultValue]
    );
}

#[test]
fn numbers_promote_upwards_only_and_strings_and_bytes_swap() {
    let of = |t: &str| record(&format!(r#"{{"name":"a","type":"{t}"}}"#));
    for (writer, reader) in [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ] {
        assert!(kinds(&of(reader), &of(writer)).is_empty(), "{writer} → {reader}");
    }
    for (writer, reader) in [
        ("long", "int"),
        ("double", "float"),
        ("int", "string"),
        ("boolean", "int"),
    ] {
        let found = reader_incompatibilities(&of(reader), &of(writer));
        assert_eq!(found.len(), 1, "{writer} → {reader}");
        assert_eq!(found[0].kind, IncompatibilityKind::TypeMismatch);
        assert_eq!(found[0].location, "/fields/0/type");
    }
}

#[test]
fn enums_need_every_written_symbol_or_a_default() {
    let e = |symbols: &str, default: &str| {
        record(&format!(
            r#"{{"name":"a","type":{{"type":"enum","name":"E","symbols":[{symbols}]{default}}}}}"#
        ))
    };
    let (old, new) = (e(r#""A","B""#, ""), e(r#""A","B","C""#, ""));
    assert!(
        kinds(&new, &old).is_empty(),
        "a symbol added: new readers read old data"
    );
    let found = reader_incompatibilities(&old, &new);
    assert_eq!(found[0].kind, IncompatibilityKind::MissingEnumSymbols);
    assert_eq!(found[0].additional_info, "[C]");
    let with_default = e(r#""A","B""#, r#","default":"A""#);
    assert!(
        kinds(&with_default, &new).is_empty(),
        "unknown symbols read as the default"
    );
}

#[test]
fn fixed_sizes_must_match() {
    let f = |size: usize| schema(&format!(r#"{{"type":"fixed","name":"F","size":{size}}}"#));
    assert!(kinds(&f(8), &f(8)).is_empty());
    let found = reader_incompatibilities(&f(8), &f(16));
    assert_eq!(found[0].kind, IncompatibilityKind::FixedSizeMismatch);
    assert_eq!(found[0].additional_info, "expected: 16, found: 8");
}

#[test]
fn named_types_match_by_name_or_alias() {
    let old = record(A);
    let renamed = schema(&format!(
        r#"{{"type":"record","name":"S","namespace":"n","fields":[{A}]}}"#
    ));
    assert_eq!(kinds(&renamed, &old), vec![IncompatibilityKind::NameMismatch]);
    let aliased = schema(&format!(
        r#"{{"type":"record","name":"S","namespace":"n","aliases":["R"],"fields":[{A}]}}"#
    ));
    assert!(kinds(&aliased, &old).is_empty());
    let other_namespace = schema(&format!(
        r#"{{"type":"record","name":"R","namespace":"m","fields":[{A}]}}"#
    ));
    assert!(
        kinds(&other_namespace, &old).is_empty(),
        "Avro compares the short names"
    );
}

#[test]
fn unions_on_either_side() {
    let of = |t: &str| record(&format!(r#"{{"name":"a","type":{t}}}"#));
    let (nullable, plain) = (of(r#"["null","string"]"#), of(r#""string""#));
    assert!(
        kinds(&nullable, &plain).is_empty(),
        "a reader union with the writer's type"
    );
    assert_eq!(
        kinds(&plain, &nullable),
        vec![IncompatibilityKind::TypeMismatch],
        "the writer's null branch has no reader"
    );
    let found = reader_incompatibilities(&nullable, &of(r#""int""#));
    assert_eq!(found[0].kind, IncompatibilityKind::MissingUnionBranch);
    assert!(
        kinds(&of(r#"["null","string","int"]"#), &nullable).is_empty(),
        "a branch added"
    );
    assert_eq!(
        kinds(&nullable, &of(r#"["null","string","int"]"#)),
        vec![IncompatibilityKind::MissingUnionBranch],
        "a branch removed"
    );
    assert!(
        kinds(&of(r#"["null","long"]"#), &of(r#"["null","int"]"#)).is_empty(),
        "promoted inside"
    );
}

#[test]
fn arrays_and_maps_compare_their_items_and_values() {
    let of = |t: &str| record(&format!(r#"{{"name":"a","type":{t}}}"#));
    let found = reader_incompatibilities(
        &of(r#"{"type":"array","items":"int"}"#),
        &of(r#"{"type":"array","items":"string"}"#),
    );
    assert_eq!(found[0].location, "/fields/0/type/items");
    let found = reader_incompatibilities(
        &of(r#"{"type":"map","values":"int"}"#),
        &of(r#"{"type":"map","values":"long"}"#),
    );
    assert_eq!(found[0].location, "/fields/0/type/values");
    assert!(kinds(
        &of(r#"{"type":"map","values":"long"}"#),
        &of(r#"{"type":"map","values":"int"}"#)
    )
    .is_empty());
}

#[test]
fn recursive_types_terminate() {
    let list = |extra: &str| {
        schema(&format!(
            r#"{{"type":"record","name":"Node","fields":[{{"name":"value","type":"int"}},{{"name":"next","type":["null","Node"]}}{extra}]}}"#
        ))
    };
    assert!(kinds(&list(""), &list("")).is_empty());
    assert_eq!(
        kinds(&list(r#",{"name":"x","type":"int"}"#), &list("")),
        vec![IncompatibilityKind::ReaderFieldMissingDefaultValue]
    );
}

#[test]
fn references_supply_named_types() {
    let address = r#"{"type":"record","name":"Address","namespace":"n","fields":[{"name":"city","type":"string"}]}"#;
    let person = |field: &str| {
        format!(
            r#"{{"type":"record","name":"Person","namespace":"n","fields":[{{"name":"home","type":"n.Address"}}{field}]}}"#
        )
    };
    let old = AvroSchema::parse(&person(""), &[address]).unwrap();
    let new = AvroSchema::parse(&person(r#",{"name":"age","type":"int","default":0}"#), &[address]).unwrap();
    assert!(kinds(&new, &old).is_empty());
    let moved = r#"{"type":"record","name":"Address","namespace":"n","fields":[{"name":"city","type":"int"}]}"#;
    let changed = AvroSchema::parse(&person(""), &[moved]).unwrap();
    let found = reader_incompatibilities(&changed, &old);
    assert_eq!(found[0].location, "/fields/0/type/fields/0/type", "{found:?}");
    assert!(AvroSchema::parse(&person(""), &[]).is_err(), "an unknown named type");
}

#[test]
fn bad_schemas_are_refused_with_the_reason() {
    for bad in [
        "",
        "{",
        r#"{"type":"record"}"#,
        r#"{"type":"nope"}"#,
        r#"{"type":"fixed","name":"F"}"#,
    ] {
        let error = AvroSchema::parse(bad, &[]).unwrap_err();
        assert!(error.to_string().starts_with("Invalid schema"), "{bad}: {error}");
    }
}

#[test]
fn the_canonical_string_is_compact_json() {
    let spaced = schema(
        "{ \"type\" : \"record\", \"name\" : \"R\", \"fields\" : [ { \"name\" : \"a\", \"type\" : \"int\" } ] }",
    );
    let tight = schema(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
    assert_eq!(spaced.canonical_string(), tight.canonical_string());
    assert!(!spaced.canonical_string().contains(' '));
}
