//! Schemas written for these tests. Compatibility cases read as BACKWARD checks:
//! `reader_incompatibilities(new, old)`.

use super::*;
use prost_reflect::prost::Message as _;

fn schema(text: &str) -> ProtobufSchema {
    ProtobufSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn proto3(body: &str) -> ProtobufSchema {
    schema(&format!("syntax = \"proto3\";\npackage shop;\n{body}"))
}

fn proto2(body: &str) -> ProtobufSchema {
    schema(&format!("syntax = \"proto2\";\npackage shop;\n{body}"))
}

/// The kinds of every difference (compatible or not) when `new` reads `old`, sorted.
fn kinds(new: &ProtobufSchema, old: &ProtobufSchema) -> Vec<DifferenceKind> {
    let mut kinds: Vec<DifferenceKind> = differences(new, old).iter().map(|d| d.kind).collect();
    kinds.sort_by_key(|k| k.name());
    kinds
}

fn sorted(mut kinds: Vec<DifferenceKind>) -> Vec<DifferenceKind> {
    kinds.sort_by_key(|k| k.name());
    kinds
}

use DifferenceKind as D;

struct Case {
    what: &'static str,
    proto2: bool,
    old: &'static str,
    new: &'static str,
    differences: &'static [DifferenceKind],
    compatible: bool,
}

const fn case(
    what: &'static str,
    old: &'static str,
    new: &'static str,
    differences: &'static [DifferenceKind],
    compatible: bool,
) -> Case {
    Case {
        what,
        proto2: false,
        old,
        new,
        differences,
        compatible,
    }
}

const fn case2(
    what: &'static str,
    old: &'static str,
    new: &'static str,
    differences: &'static [DifferenceKind],
    compatible: bool,
) -> Case {
    Case {
        what,
        proto2: true,
        old,
        new,
        differences,
        compatible,
    }
}

const B: &str = "message B { int32 x = 1; }";

/// Each rule, with a case where it applies and one of the opposite verdict.
const CASES: &[Case] = &[
    // Messages.
    case(
        "identical",
        "message A { int32 a = 1; }",
        "message A { int32 a = 1; }",
        &[],
        true,
    ),
    case(
        "message added",
        "message A { int32 a = 1; }",
        "message A { int32 a = 1; } message C { string c = 1; }",
        &[D::MessageAdded],
        true,
    ),
    case(
        "message removed",
        "message A { int32 a = 1; } message C { string c = 1; }",
        "message A { int32 a = 1; }",
        &[D::MessageRemoved],
        false,
    ),
    case(
        "message renamed: removed plus added",
        "message A { int32 a = 1; }",
        "message Z { int32 a = 1; }",
        &[D::MessageAdded, D::MessageRemoved],
        false,
    ),
    case(
        "messages reordered",
        "message A { int32 a = 1; } message C { string c = 1; }",
        "message C { string c = 1; } message A { int32 a = 1; }",
        &[D::MessageMoved, D::MessageMoved],
        true,
    ),
    case(
        "nested message added",
        "message A { int32 a = 1; }",
        "message A { message N { int32 n = 1; } int32 a = 1; }",
        &[D::MessageAdded],
        true,
    ),
    case(
        "nested message removed",
        "message A { message N { int32 n = 1; } int32 a = 1; }",
        "message A { int32 a = 1; }",
        &[D::MessageRemoved],
        false,
    ),
    case(
        "package changed",
        "message A { int32 a = 1; }",
        "message A { int32 a = 1; }",
        &[],
        true,
    ),
    // Enums.
    case(
        "enum added",
        "message A { int32 a = 1; }",
        "message A { int32 a = 1; } enum E { E0 = 0; }",
        &[D::EnumAdded],
        true,
    ),
    case(
        "enum removed",
        "message A { int32 a = 1; } enum E { E0 = 0; }",
        "message A { int32 a = 1; }",
        &[D::EnumRemoved],
        true,
    ),
    case(
        "enum constant added",
        "enum E { X = 0; }",
        "enum E { X = 0; Y = 1; }",
        &[D::EnumConstAdded],
        true,
    ),
    case(
        "enum constant removed",
        "enum E { X = 0; Y = 1; }",
        "enum E { X = 0; }",
        &[D::EnumConstRemoved],
        true,
    ),
    case(
        "enum constant renamed",
        "enum E { X = 0; Y = 1; }",
        "enum E { X = 0; Z = 1; }",
        &[D::EnumConstChanged],
        true,
    ),
    case(
        "nested enum constant added",
        "message A { enum S { S0 = 0; } S s = 1; }",
        "message A { enum S { S0 = 0; S1 = 1; } S s = 1; }",
        &[D::EnumConstAdded],
        true,
    ),
    case(
        "enum field to another enum",
        "enum E { X = 0; } enum F { Y = 0; } message A { E e = 1; }",
        "enum E { X = 0; } enum F { Y = 0; } message A { F e = 1; }",
        &[D::FieldNamedTypeChanged],
        false,
    ),
    case(
        "enum field to int32: same wire type",
        "enum E { X = 0; } message A { E e = 1; }",
        "enum E { X = 0; } message A { int32 e = 1; }",
        &[],
        true,
    ),
    // Fields.
    case(
        "field added",
        "message A { int32 a = 1; }",
        "message A { int32 a = 1; string b = 2; }",
        &[D::FieldAdded],
        true,
    ),
    case(
        "field removed",
        "message A { int32 a = 1; string b = 2; }",
        "message A { int32 a = 1; }",
        &[D::FieldRemoved],
        true,
    ),
    case(
        "field renamed",
        "message A { int32 a = 1; }",
        "message A { int32 renamed = 1; }",
        &[D::FieldNameChanged],
        true,
    ),
    case(
        "tag reused with a compatible type: no tag tracking",
        "message A { int32 a = 1; }",
        "message A { reserved \"a\"; int64 other = 1; }",
        &[D::FieldNameChanged],
        true,
    ),
    case(
        "scalar to message",
        "message A { int32 a = 1; } message B { int32 x = 1; }",
        "message A { B a = 1; } message B { int32 x = 1; }",
        &[D::FieldKindChanged],
        false,
    ),
    case(
        "map to repeated message",
        "message A { map<string, int32> m = 1; } message B { int32 x = 1; }",
        "message A { repeated B m = 1; } message B { int32 x = 1; }",
        &[D::FieldKindChanged],
        false,
    ),
    case(
        "scalar kind across groups",
        "message A { int32 a = 1; int32 b = 2; int32 c = 3; }",
        "message A { int32 a = 1; int32 b = 2; string c = 3; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "scalar kind within a group",
        "message A { int32 a = 1; sint32 b = 2; fixed32 c = 3; }",
        "message A { uint64 a = 1; sint64 b = 2; sfixed32 c = 3; }",
        &[],
        true,
    ),
    case(
        "message field to another message",
        "message A { B b = 1; } message B { int32 x = 1; } message C { int32 x = 1; }",
        "message A { C b = 1; } message B { int32 x = 1; } message C { int32 x = 1; }",
        &[D::FieldNamedTypeChanged],
        false,
    ),
    case(
        "message field's type changed inside",
        "message A { B b = 1; } message B { int32 x = 1; }",
        "message A { B b = 1; } message B { string x = 1; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "message field's type grew a field",
        "message A { B b = 1; } message B { int32 x = 1; }",
        "message A { B b = 1; } message B { int32 x = 1; int32 y = 2; }",
        &[D::FieldAdded],
        true,
    ),
    case(
        "recursive message changed",
        "message Node { Node next = 1; int32 v = 2; }",
        "message Node { Node next = 1; string v = 2; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "recursive message grew",
        "message Node { Node next = 1; int32 v = 2; }",
        "message Node { Node next = 1; int32 v = 2; Node other = 3; }",
        &[D::FieldAdded],
        true,
    ),
    case(
        "nested message's field changed",
        "message A { message N { int32 n = 1; } N n = 1; }",
        "message A { message N { double n = 1; } N n = 1; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "numeric field made repeated",
        "message A { int32 a = 1; }",
        "message A { repeated int32 a = 1; }",
        &[D::FieldNumericLabelChanged],
        false,
    ),
    case(
        "enum field made repeated",
        "enum E { X = 0; } message A { E e = 1; }",
        "enum E { X = 0; } message A { repeated E e = 1; }",
        &[D::FieldNumericLabelChanged],
        false,
    ),
    case(
        "string field made repeated",
        "message A { string s = 1; }",
        "message A { repeated string s = 1; }",
        &[D::FieldStringOrBytesLabelChanged],
        true,
    ),
    case(
        "message field made repeated",
        "message A { B b = 1; } message B { int32 x = 1; }",
        "message A { repeated B b = 1; } message B { int32 x = 1; }",
        &[],
        true,
    ),
    case(
        "proto3 optional added: same wire format",
        "message A { int32 a = 1; }",
        "message A { optional int32 a = 1; }",
        &[],
        true,
    ),
    // Maps.
    case(
        "map value within a group",
        "message A { map<string, int32> m = 1; }",
        "message A { map<string, int64> m = 1; }",
        &[],
        true,
    ),
    case(
        "map value across groups",
        "message A { map<string, int32> m = 1; }",
        "message A { map<string, string> m = 1; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "map key across groups",
        "message A { map<string, int32> m = 1; }",
        "message A { map<int32, int32> m = 1; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "map message value changed inside",
        "message A { map<string, B> m = 1; } message B { int32 x = 1; }",
        "message A { map<string, B> m = 1; } message B { fixed64 x = 1; }",
        &[D::FieldScalarKindChanged],
        false,
    ),
    case(
        "map value scalar to message",
        "message A { map<string, int32> m = 1; } message B { int32 x = 1; }",
        "message A { map<string, B> m = 1; } message B { int32 x = 1; }",
        &[D::FieldKindChanged],
        false,
    ),
    // Oneofs.
    case(
        "oneof added with new fields",
        "message A { int32 a = 1; }",
        "message A { int32 a = 1; oneof c { string x = 2; int32 y = 3; } }",
        &[D::FieldAdded, D::FieldAdded, D::OneofAdded],
        true,
    ),
    case(
        "oneof removed with its fields",
        "message A { int32 a = 1; oneof c { string x = 2; int32 y = 3; } }",
        "message A { int32 a = 1; }",
        &[D::FieldRemoved, D::FieldRemoved, D::OneofRemoved],
        true,
    ),
    case(
        "oneof field added",
        "message A { oneof c { string x = 2; } }",
        "message A { oneof c { string x = 2; int32 y = 3; } }",
        &[D::OneofFieldAdded],
        true,
    ),
    case(
        "oneof field removed",
        "message A { oneof c { string x = 2; int32 y = 3; } }",
        "message A { oneof c { string x = 2; } }",
        &[D::OneofFieldRemoved],
        false,
    ),
    case(
        "oneof field moved to top level",
        "message A { oneof c { string x = 2; int32 y = 3; } }",
        "message A { oneof c { string x = 2; } int32 y = 3; }",
        &[D::OneofFieldMovedToTopLevel],
        true,
    ),
    case(
        "one field moved into a new oneof",
        "message A { int32 a = 1; string b = 2; }",
        "message A { int32 a = 1; oneof c { string b = 2; } }",
        &[D::OneofAdded],
        true,
    ),
    case(
        "two fields moved into a new oneof",
        "message A { int32 a = 1; string b = 2; }",
        "message A { oneof c { int32 a = 1; string b = 2; } }",
        &[D::MultipleFieldsMovedToOneof, D::OneofAdded],
        false,
    ),
    case(
        "oneof renamed: its fields stay exclusive",
        "message A { oneof c { int32 a = 1; string b = 2; } }",
        "message A { oneof d { int32 a = 1; string b = 2; } }",
        &[D::OneofAdded, D::OneofRemoved],
        true,
    ),
    case(
        "field moved into an existing oneof",
        "message A { int32 a = 1; oneof c { string b = 2; } }",
        "message A { oneof c { int32 a = 1; string b = 2; } }",
        &[D::FieldMovedToExistingOneof],
        false,
    ),
    // proto2.
    case2(
        "proto2 optional field added",
        "message A { optional int32 a = 1; }",
        "message A { optional int32 a = 1; optional int32 b = 2; }",
        &[D::FieldAdded],
        true,
    ),
    case2(
        "proto2 required field added",
        "message A { optional int32 a = 1; }",
        "message A { optional int32 a = 1; required int32 b = 2; }",
        &[D::RequiredFieldAdded],
        false,
    ),
    case2(
        "proto2 optional field removed",
        "message A { optional int32 a = 1; optional string b = 2; }",
        "message A { optional int32 a = 1; }",
        &[D::FieldRemoved],
        true,
    ),
    case2(
        "proto2 required field removed",
        "message A { optional int32 a = 1; required string b = 2; }",
        "message A { optional int32 a = 1; }",
        &[D::RequiredFieldRemoved],
        false,
    ),
    case2(
        "proto2 field made required",
        "message A { optional int32 a = 1; }",
        "message A { required int32 a = 1; }",
        &[D::RequiredFieldAdded],
        false,
    ),
    case2(
        "proto2 field no longer required",
        "message A { required int32 a = 1; }",
        "message A { optional int32 a = 1; }",
        &[D::RequiredFieldRemoved],
        false,
    ),
    case2(
        "proto2 nested message with a default changed",
        "message A { message N { optional int32 n = 1 [default = 3]; } optional N n = 1; }",
        "message A { message N { optional int32 n = 1 [default = 4]; } optional N n = 1; }",
        &[],
        true,
    ),
    case2(
        "proto2 group field changed inside",
        "message A { optional group G = 1 { optional int32 x = 2; } }",
        "message A { optional group G = 1 { optional float x = 2; } }",
        &[D::FieldScalarKindChanged],
        false,
    ),
];

#[test]
fn each_rule_case_by_case() {
    for case in CASES {
        let (old, new) = if case.proto2 {
            (proto2(case.old), proto2(case.new))
        } else {
            (proto3(case.old), proto3(case.new))
        };
        assert_eq!(
            kinds(&new, &old),
            sorted(case.differences.to_vec()),
            "{}: differences",
            case.what
        );
        let incompatible = reader_incompatibilities(&new, &old);
        assert_eq!(
            incompatible.is_empty(),
            case.compatible,
            "{}: {incompatible:?}",
            case.what
        );
    }
}

#[test]
fn the_scalar_groups_decide_which_scalars_read_each_other() {
    let groups: &[&[&str]] = &[
        &["int32", "int64", "uint32", "uint64", "bool"],
        &["sint32", "sint64"],
        &["string", "bytes"],
        &["fixed32", "sfixed32"],
        &["fixed64", "sfixed64"],
        &["float"],
        &["double"],
    ];
    let of = |t: &str| proto3(&format!("message A {{ {t} a = 1; }}"));
    for (i, group) in groups.iter().enumerate() {
        for (j, other) in groups.iter().enumerate() {
            for old in group.iter() {
                for new in other.iter() {
                    let found = reader_incompatibilities(&of(new), &of(old));
                    if i == j {
                        assert!(found.is_empty(), "{old} → {new}: {found:?}");
                    } else {
                        assert_eq!(found.len(), 1, "{old} → {new}");
                        assert_eq!(found[0].kind, D::FieldScalarKindChanged, "{old} → {new}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_package_change_is_reported_once() {
    let old = schema("syntax = \"proto3\"; package shop; message A { B b = 1; } message B { int32 x = 1; }");
    let new = schema("syntax = \"proto3\"; package store; message A { B b = 1; } message B { int32 x = 1; }");
    assert_eq!(kinds(&new, &old), vec![D::PackageChanged]);
    let found = reader_incompatibilities(&new, &old);
    assert_eq!(found[0].path, "#/");
    assert_eq!(found[0].additional_info, "old: 'shop', new: 'store'");
}

#[test]
fn forward_is_the_other_direction() {
    let old = proto2("message A { optional int32 a = 1; }");
    let new = proto2("message A { optional int32 a = 1; required int32 b = 2; }");
    assert_eq!(kinds(&new, &old), vec![D::RequiredFieldAdded]);
    assert_eq!(kinds(&old, &new), vec![D::RequiredFieldRemoved]);
    let (old, new) = (proto3(B), proto3(&format!("{B} message C {{ int32 c = 1; }}")));
    assert!(
        reader_incompatibilities(&new, &old).is_empty(),
        "an added message reads old data"
    );
    assert_eq!(kinds(&old, &new), vec![D::MessageRemoved], "but old readers lack it");
}

#[test]
fn incompatibilities_render_like_confluents() {
    let old = proto3("message Order { string id = 1; int32 count = 3; }");
    let new = proto3("message Order { string id = 1; string count = 3; }");
    let found = reader_incompatibilities(&new, &old);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "#/Order/3");
    assert_eq!(found[0].additional_info, "old: int32, new: string");
    let text = found[0].to_string();
    assert!(
        text.starts_with("{errorType:'FIELD_SCALAR_KIND_CHANGED', description:'"),
        "{text}"
    );
    assert!(text.contains("at path '#/Order/3'"), "{text}");
    assert!(text.ends_with("additionalInfo:'old: int32, new: string'}"), "{text}");
}

#[test]
fn nested_paths_name_the_message_within_the_package() {
    let old = proto3("message A { message N { int32 n = 1; } N n = 1; }");
    let new = proto3("message A { message N { bytes n = 1; } N n = 1; }");
    let found = reader_incompatibilities(&new, &old);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "#/A.N/1");
}

const MONEY_V1: &str =
    "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 units = 2; }\n";
const MONEY_V2: &str =
    "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; string units = 2; }\n";
const ORDER: &str =
    "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Order { common.Money total = 1; }\n";

#[test]
fn an_import_resolves_through_a_reference() {
    let order = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V1)]).unwrap();
    assert_eq!(order.record_name().as_deref(), Some("shop.Order"));
    assert!(order.canonical_string().contains("import \"common/money.proto\";"));
    assert!(order.canonical_string().contains("common.Money total = 1;"));
    let missing = ProtobufSchema::parse(ORDER, &[]).unwrap_err();
    assert!(missing.contains("common/money.proto"), "{missing}");
}

#[test]
fn referenced_types_are_compared_too() {
    let old = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V1)]).unwrap();
    let new = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V2)]).unwrap();
    let found = reader_incompatibilities(&new, &old);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, D::FieldScalarKindChanged);
    assert_eq!(found[0].path, "#/common.Money/2");
    let same = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V1)]).unwrap();
    assert!(differences(&same, &old).is_empty());
}

#[test]
fn well_known_imports_need_no_reference() {
    let text = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/type/money.proto";
import "google/type/date.proto";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message Order {
  google.protobuf.Timestamp at = 1;
  google.type.Money total = 2 [(confluent.field_meta) = { doc: "gross", tags: ["PII", "money"] }];
  google.type.Date day = 3;
  confluent.type.Decimal tax = 4;
}
"#;
    let order = schema(text);
    let canonical = order.canonical_string();
    assert!(canonical.contains("google.protobuf.Timestamp at = 1;"), "{canonical}");
    assert!(
        canonical.contains(
            r#"google.type.Money total = 2 [(confluent.field_meta) = { doc: "gross" tags: "PII" tags: "money" }];"#
        ),
        "{canonical}"
    );
    assert_eq!(schema(&canonical).canonical_string(), canonical);
    for path in [
        "google/type/calendar_period.proto",
        "google/type/color.proto",
        "google/type/datetime.proto",
        "google/type/dayofweek.proto",
        "google/type/decimal.proto",
        "google/type/expr.proto",
        "google/type/fraction.proto",
        "google/type/interval.proto",
        "google/type/latlng.proto",
        "google/type/localized_text.proto",
        "google/type/month.proto",
        "google/type/phone_number.proto",
        "google/type/postal_address.proto",
        "google/type/quaternion.proto",
        "google/type/timeofday.proto",
        "google/protobuf/any.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/wrappers.proto",
    ] {
        ProtobufSchema::parse(&format!("syntax = \"proto3\";\nimport \"{path}\";\n"), &[])
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

#[test]
fn an_unknown_import_is_an_error() {
    let error = ProtobufSchema::parse(
        "syntax = \"proto3\";\nimport \"nowhere/missing.proto\";\nmessage A { int32 a = 1; }\n",
        &[],
    )
    .unwrap_err();
    assert!(error.contains("nowhere/missing.proto"), "{error}");
    assert!(error.contains("not found"), "{error}");
}

#[test]
fn syntax_errors_say_where() {
    let error = ProtobufSchema::parse("syntax = \"proto3\";\nmessage A {\n  int32 a = ;\n}\n", &[]).unwrap_err();
    assert!(error.starts_with("schema.proto:3:"), "{error}");
    for garbage in [
        "message",
        "}{",
        "syntax = \"proto9\";",
        "message A { int32 a = 1 }",
        "\u{0}\u{ff}",
    ] {
        assert!(ProtobufSchema::parse(garbage, &[]).is_err(), "{garbage:?}");
    }
}

#[test]
fn unknown_types_and_clashing_numbers_are_errors() {
    let error = ProtobufSchema::parse("syntax = \"proto3\";\nmessage A { Missing m = 1; }\n", &[]).unwrap_err();
    assert!(error.contains("Missing"), "{error}");
    let error =
        ProtobufSchema::parse("syntax = \"proto3\";\nmessage A { int32 a = 1; int32 b = 1; }\n", &[]).unwrap_err();
    assert!(!error.is_empty());
}

#[test]
fn a_reference_may_not_take_the_schemas_own_name() {
    let main = "syntax = \"proto3\";\nimport \"schema.proto\";\nmessage A { B b = 1; }\n";
    let reference = "syntax = \"proto3\";\nmessage B { int32 x = 1; }\n";
    let parsed = ProtobufSchema::parse(main, &[("schema.proto", reference)]).unwrap();
    assert_eq!(parsed.record_name().as_deref(), Some("A"));
}

#[test]
fn canonical_strings_ignore_whitespace_comments_and_name_spelling() {
    let compact = "syntax=\"proto3\";package shop;message Order{string id=1;Item item=2;message Item{int32 n=1;}}";
    let spaced = r#"
            // An order.
            syntax = "proto3";
            package shop;

            /* The order itself. */
            message Order {
                string   id   = 1;   // its id
                .shop.Order.Item item = 2;

                message Item {
                    int32 n = 1;
                }
            }
        "#;
    let (a, b) = (schema(compact), schema(spaced));
    assert_eq!(a.canonical_string(), b.canonical_string());
    assert_eq!(
            a.canonical_string(),
            "syntax = \"proto3\";\npackage shop;\n\nmessage Order {\n  string id = 1;\n  Order.Item item = 2;\n  message Item {\n    int32 n = 1;\n  }\n}\n"
        );
    assert_ne!(
        a.canonical_string(),
        proto3("message Order { string id = 1; }").canonical_string()
    );
}

const RICH: &str = r#"syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";
import "google/protobuf/descriptor.proto";

option java_package = "com.shop.v1";
option optimize_for = SPEED;

message Order {
  option deprecated = true;
  reserved 8, 10 to 12, 100 to max;
  reserved "legacy", "old";

  string id = 1 [json_name = "orderId"];
  repeated int64 amounts = 2 [packed = false];
  map<string, Item> items = 3;
  optional string note = 4;
  google.protobuf.Timestamp at = 5 [deprecated = true];
  Status status = 6;
  bytes blob = 7;
  oneof payment {
    string card = 20;
    Item voucher = 21;
  }

  message Item {
    string sku = 1;
    double price = 2;
    Item parent = 3;
  }

  enum Status {
    option allow_alias = true;
    UNKNOWN = 0;
    OPEN = 1;
    STARTED = 1;
    CLOSED = 2 [deprecated = true];
  }
}

enum Channel {
  reserved 5 to 7;
  reserved "FAX";
  CHANNEL_UNKNOWN = 0;
  WEB = 1;
}

extend google.protobuf.MessageOptions {
  string owner = 50001;
}

service Orders {
  option deprecated = true;
  rpc Get (Order) returns (Order);
  rpc Watch (stream Order.Item) returns (stream Order) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
}
"#;

#[test]
fn the_canonical_form_parses_back_to_itself() {
    let rich = schema(RICH);
    let canonical = rich.canonical_string();
    for expected in [
            "syntax = \"proto3\";\npackage shop.v1;\n",
            "import \"google/protobuf/timestamp.proto\";\nimport \"google/protobuf/descriptor.proto\";\n",
            "option java_package = \"com.shop.v1\";",
            "option optimize_for = SPEED;",
            "  option deprecated = true;",
            "  reserved 8, 10 to 12, 100 to max;",
            "  reserved \"legacy\", \"old\";",
            "  string id = 1 [json_name = \"orderId\"];",
            "  repeated int64 amounts = 2 [packed = false];",
            "  map<string, Order.Item> items = 3;",
            "  optional string note = 4;",
            "  google.protobuf.Timestamp at = 5 [deprecated = true];",
            "  oneof payment {\n    string card = 20;\n    Order.Item voucher = 21;\n  }",
            "    Order.Item parent = 3;",
            "    option allow_alias = true;",
            "    STARTED = 1;",
            "    CLOSED = 2 [deprecated = true];",
            "  reserved 5 to 7;",
            "extend google.protobuf.MessageOptions {\n  string owner = 50001;\n}",
            "  rpc Get (Order) returns (Order);",
            "  rpc Watch (stream Order.Item) returns (stream Order) {\n    option idempotency_level = NO_SIDE_EFFECTS;\n  }",
        ] {
            assert!(canonical.contains(expected), "missing {expected:?} in\n{canonical}");
        }
    assert!(
        !canonical.contains("ItemsEntry"),
        "map entries print as maps:\n{canonical}"
    );
    assert!(
        !canonical.contains("_note"),
        "proto3 optional's oneof is not printed:\n{canonical}"
    );
    let again = schema(&canonical);
    assert_eq!(again.canonical_string(), canonical);
    assert!(differences(&again, &rich).is_empty());
}

#[test]
fn every_variant_that_parses_round_trips_and_none_panics() {
    let lines: Vec<&str> = RICH.lines().collect();
    let mut parsed = 0;
    for skip in 0..lines.len() {
        let text: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        let Ok(variant) = ProtobufSchema::parse(&text.join("\n"), &[]) else {
            continue;
        };
        parsed += 1;
        for printed in [variant.canonical_string(), variant.normalized_string()] {
            let again = ProtobufSchema::parse(&printed, &[]).unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert!(differences(&again, &variant).is_empty(), "{printed}");
        }
    }
    assert!(parsed > lines.len() / 2, "only {parsed} variants parsed");
    for end in (0..RICH.len()).filter(|&end| RICH.is_char_boundary(end)) {
        let _ = ProtobufSchema::parse(&RICH[..end], &[]);
    }
}

#[test]
fn proto2_prints_labels_defaults_groups_and_extensions() {
    let text = r#"syntax = "proto2";
package legacy;
message Record {
  required int32 id = 1;
  optional string name = 2 [default = "a \"quoted\"\nname"];
  optional Kind kind = 3 [default = SMALL];
  optional float ratio = 4 [default = inf];
  optional bytes raw = 5 [default = "\001\377"];
  repeated group Entry = 6 {
    optional int32 x = 7;
  }
  extensions 100 to 199, 1000 to max;
  enum Kind { SMALL = 1; LARGE = 2; }
}
extend Record {
  optional int32 extra = 100;
}
"#;
    let record = schema(text);
    let canonical = record.canonical_string();
    for expected in [
        "syntax = \"proto2\";",
        "  required int32 id = 1;",
        r#"  optional string name = 2 [default = "a \"quoted\"\nname"];"#,
        "  optional Record.Kind kind = 3 [default = SMALL];",
        "  optional float ratio = 4 [default = inf];",
        "  repeated group Entry = 6 {\n    optional int32 x = 7;\n  }",
        "  extensions 100 to 199, 1000 to max;",
        "extend Record {\n  optional int32 extra = 100;\n}",
    ] {
        assert!(canonical.contains(expected), "missing {expected:?} in\n{canonical}");
    }
    assert!(!canonical.contains("message Entry"), "groups print once:\n{canonical}");
    assert_eq!(schema(&canonical).canonical_string(), canonical);
}

#[test]
fn normalizing_sorts_what_confluent_sorts() {
    let a = schema(
        r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
option java_package = "p";
option java_multiple_files = true;
message B { int32 b = 1; }
message A {
  reserved 9, 7;
  string second = 2 [deprecated = true, json_name = "s"];
  int32 first = 1;
  oneof o { int32 y = 6; int32 x = 5; }
  google.protobuf.Timestamp t = 4;
  google.protobuf.Duration d = 3;
}
enum E { X = 0; Z = 2; Y = 1; }
"#,
    );
    let b = schema(
        r#"syntax = "proto3";
package shop;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
option java_multiple_files = true;
option java_package = "p";
message B { int32 b = 1; }
message A {
  reserved 7, 9;
  int32 first = 1;
  google.protobuf.Duration d = 3;
  string second = 2 [json_name = "s", deprecated = true];
  google.protobuf.Timestamp t = 4;
  oneof o { int32 x = 5; int32 y = 6; }
}
enum E { X = 0; Y = 1; Z = 2; }
"#,
    );
    assert_ne!(a.canonical_string(), b.canonical_string());
    let normalized = a.normalized_string();
    assert_eq!(normalized, b.normalized_string());
    assert_eq!(
        normalized,
        r#"syntax = "proto3";
package shop;

import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";

option java_multiple_files = true;
option java_package = "p";

message B {
  int32 b = 1;
}

message A {
  reserved 7, 9;
  int32 first = 1;
  string second = 2 [deprecated = true, json_name = "s"];
  google.protobuf.Duration d = 3;
  google.protobuf.Timestamp t = 4;
  oneof o {
    int32 x = 5;
    int32 y = 6;
  }
}

enum E {
  X = 0;
  Y = 1;
  Z = 2;
}
"#
    );
    assert_eq!(schema(&normalized).normalized_string(), normalized);
}

#[test]
fn shadowed_names_are_qualified() {
    // Inside Outer, `Inner` would mean Outer.Inner, so the top-level one needs more.
    let text = "syntax = \"proto3\";\npackage p;\nmessage Inner { int32 a = 1; }\nmessage Outer {\n  message Inner { int32 b = 1; }\n  .p.Inner top = 1;\n  Inner nested = 2;\n}\n";
    let canonical = schema(text).canonical_string();
    assert!(canonical.contains("  p.Inner top = 1;"), "{canonical}");
    assert!(canonical.contains("  Outer.Inner nested = 2;"), "{canonical}");
    assert_eq!(schema(&canonical).canonical_string(), canonical);
}

const INDEXED: &str = r#"syntax = "proto3";
package idx;
message First { int32 a = 1; }
enum Ignored { ZERO = 0; }
message Second {
  map<string, int32> counts = 1;
  message Inner {
    message Deep { int32 d = 1; }
    int32 i = 1;
  }
  message Other { int32 o = 1; }
}
"#;

#[test]
fn message_indexes_name_messages() {
    let indexed = schema(INDEXED);
    let name = |indexes: &[i32]| indexed.message_name(indexes);
    assert_eq!(name(&[0]).as_deref(), Some("idx.First"));
    assert_eq!(name(&[]).as_deref(), Some("idx.First"), "no indexes mean [0]");
    assert_eq!(name(&[1]).as_deref(), Some("idx.Second"));
    assert_eq!(
        name(&[1, 0]).as_deref(),
        Some("idx.Second.Inner"),
        "the map entry is not counted"
    );
    assert_eq!(name(&[1, 0, 0]).as_deref(), Some("idx.Second.Inner.Deep"));
    assert_eq!(name(&[1, 1]).as_deref(), Some("idx.Second.Other"));
    for out_of_range in [&[2][..], &[1, 2], &[0, 0], &[-1], &[1, 0, 0, 0], &[i32::MAX]] {
        assert_eq!(name(out_of_range), None, "{out_of_range:?}");
    }
    assert_eq!(indexed.record_name().as_deref(), Some("idx.First"));
    assert_eq!(proto3("enum OnlyEnum { Z = 0; }").record_name(), None);
}

#[test]
fn message_indexes_round_trip() {
    for indexes in [
        vec![0],
        vec![1],
        vec![1, 0],
        vec![3, 2, 1, 0],
        vec![0, 0, 0],
        vec![300, 70_000],
        vec![i32::MAX],
        vec![0; MESSAGE_INDEXES_MAX],
    ] {
        let mut out = Vec::new();
        write_message_indexes(&indexes, &mut out);
        out.extend_from_slice(b"payload");
        let (read, rest) = read_message_indexes(&out).unwrap();
        assert_eq!(read, indexes);
        assert_eq!(rest, b"payload");
    }
}

#[test]
fn message_indexes_use_confluents_bytes() {
    let mut out = Vec::new();
    write_message_indexes(&[0], &mut out);
    assert_eq!(out, [0x00], "[0] is the single byte 0");
    out.clear();
    write_message_indexes(&[1, 0], &mut out);
    assert_eq!(out, [0x04, 0x02, 0x00], "zig-zag: count 2, then 1 and 0");
    let (read, rest) = read_message_indexes(&[0x00, 0x0a]).unwrap();
    assert_eq!((read, rest), (vec![0], &[0x0a][..]), "a count of 0 means [0]");
    let (read, _) = read_message_indexes(&[0x02, 0x00]).unwrap();
    assert_eq!(read, vec![0], "an explicit [0] reads too");
}

#[test]
fn bad_message_indexes_are_errors() {
    let too_many = {
        let mut out = Vec::new();
        write_varint(i32::try_from(MESSAGE_INDEXES_MAX).unwrap() + 1, &mut out);
        out.extend(std::iter::repeat_n(0u8, 64));
        out
    };
    let huge_count = {
        let mut out = Vec::new();
        write_varint(i32::MAX, &mut out);
        out
    };
    for (what, input) in [
        ("empty", vec![]),
        ("truncated count", vec![0x80]),
        ("truncated indexes", vec![0x04, 0x02]),
        ("count with no indexes", vec![0x06]),
        ("negative count", vec![0x01]),
        ("negative index", vec![0x02, 0x01]),
        ("varint longer than 5 bytes", vec![0xff; 6]),
        ("varint overflowing 32 bits", vec![0xff, 0xff, 0xff, 0xff, 0x7f]),
        ("too many", too_many),
        ("absurd count", huge_count),
    ] {
        assert!(read_message_indexes(&input).is_err(), "{what}");
    }
}

#[test]
fn validate_decodes_the_named_message() {
    let indexed = schema(INDEXED);
    let pool = indexed.descriptor().parent_pool().clone();
    let mut inner = DynamicMessage::new(pool.get_message_by_name("idx.Second.Inner").unwrap());
    inner.set_field_by_name("i", Value::I32(42));
    let payload = inner.encode_to_vec();
    assert!(indexed.validate(&[1, 0], &payload).is_ok());
    assert!(indexed.validate(&[0], &[]).is_ok(), "an empty message is valid");
    let garbage = [0x0a, 0xff, 0xff];
    let error = indexed.validate(&[1, 0], &garbage).unwrap_err();
    assert!(error.contains("idx.Second.Inner"), "{error}");
    assert!(indexed.validate(&[0], &[0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(
        indexed.validate(&[0], &[0x0a, 0x01, 0x41]).is_err(),
        "field 1 is an int32, not bytes"
    );
    assert!(indexed.validate(&[7], &payload).is_err(), "no such message");
}

#[test]
fn validate_requires_proto2_required_fields() {
    let record = proto2("message R { required int32 id = 1; optional N n = 2; } message N { required string s = 1; }");
    let pool = record.descriptor().parent_pool().clone();
    let message = |fields: &[(&str, Value)]| {
        let mut m = DynamicMessage::new(pool.get_message_by_name("shop.R").unwrap());
        for (name, value) in fields {
            m.set_field_by_name(name, value.clone());
        }
        m.encode_to_vec()
    };
    assert!(record.validate(&[0], &message(&[("id", Value::I32(1))])).is_ok());
    let error = record.validate(&[0], &message(&[])).unwrap_err();
    assert!(error.contains("shop.R.id"), "{error}");
    let empty_n = Value::Message(DynamicMessage::new(pool.get_message_by_name("shop.N").unwrap()));
    let error = record
        .validate(&[0], &message(&[("id", Value::I32(1)), ("n", empty_n)]))
        .unwrap_err();
    assert!(error.contains("shop.N.s"), "{error}");
}

#[test]
fn a_long_chain_of_message_types_does_not_exhaust_the_stack() {
    let chain = |last: &str| {
        let mut text = String::from("syntax = \"proto3\";\n");
        for i in 0..2000 {
            let _ = writeln!(text, "message M{i} {{ M{} next = 1; }}", i + 1);
        }
        let _ = writeln!(text, "message M2000 {{ {last} v = 1; }}");
        schema(&text)
    };
    let (old, new) = (chain("int32"), chain("string"));
    let found = reader_incompatibilities(&new, &old);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "#/M2000/1");
}
