use super::*;

fn schema(text: &str) -> JsonSchema {
    match JsonSchema::parse(text, &[]) {
        Ok(schema) => schema,
        Err(e) => panic!("{text}: {e}"),
    }
}

/// The incompatibilities, by name, when the new schema reads the old (BACKWARD).
fn backward(old: &str, new: &str) -> Vec<&'static str> {
    reader_incompatibilities(&schema(new), &schema(old))
        .iter()
        .map(|i| i.kind.name())
        .collect()
}

/// Checks a table of cases, one a line: `what | old | new | incompatibilities`
/// under BACKWARD (the new schema reads the old), names separated by spaces, none
/// for compatible. Lines starting with `//` are comments; schemas hold no `|`.
fn check(table: &str) {
    let mut failures = Vec::new();
    for line in table.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [what, old, new, expected] = parts[..] else {
            panic!("not a case: {line}");
        };
        let expected: Vec<&str> = expected.split_whitespace().collect();
        let found = backward(old, new);
        if found != expected {
            failures.push(format!("{what}: expected {expected:?}, found {found:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const STRING: &str = r##"{"type":"string"}"##;

#[test]
fn types() {
    check(
        r##"
            integer to number | {"type":"integer"} | {"type":"number"} |
            number to integer | {"type":"number"} | {"type":"integer"} | TYPE_NARROWED
            string to integer | {"type":"string"} | {"type":"integer"} | TYPE_CHANGED
            string to boolean | {"type":"string"} | {"type":"boolean"} | TYPE_CHANGED
            null type kept | {"type":"null"} | {"type":"null"} |
            string to string or null | {"type":"string"} | {"type":["string","null"]} |
            string or null to string | {"type":["string","null"]} | {"type":"string"} | TYPE_CHANGED
            type list extended | {"type":["string","null"]} | {"type":["string","null","integer"]} |
            type list narrowed | {"type":["string","null"]} | {"type":["null"]} | TYPE_CHANGED
            anything becomes true | {"type":"string"} | true |
            anything becomes empty | {"type":"object"} | {} |
            empty becomes string | {} | {"type":"string"} | TYPE_CHANGED
            false becomes string | false | {"type":"string"} |
            true becomes false | true | false | TYPE_CHANGED
            metadata changed | {"$id":"a","title":"A","description":"d","default":"x","type":"string"} | {"$id":"b","title":"B","description":"e","default":"y","type":"string"} |
        "##,
    );
}

#[test]
fn string_bounds() {
    check(
        r##"
            maxLength increased | {"type":"string","maxLength":5} | {"type":"string","maxLength":10} |
            maxLength decreased | {"type":"string","maxLength":10} | {"type":"string","maxLength":5} | MAX_LENGTH_DECREASED
            maxLength added | {"type":"string"} | {"type":"string","maxLength":5} | MAX_LENGTH_ADDED
            maxLength removed | {"type":"string","maxLength":5} | {"type":"string"} |
            minLength decreased | {"type":"string","minLength":5} | {"type":"string","minLength":1} |
            minLength increased | {"type":"string","minLength":1} | {"type":"string","minLength":5} | MIN_LENGTH_INCREASED
            minLength added | {"type":"string"} | {"type":"string","minLength":1} | MIN_LENGTH_ADDED
            pattern removed | {"type":"string","pattern":"^a"} | {"type":"string"} |
            pattern added | {"type":"string"} | {"type":"string","pattern":"^a"} | PATTERN_ADDED
            pattern changed | {"type":"string","pattern":"^a"} | {"type":"string","pattern":"^b"} | PATTERN_CHANGED
            implicit string schema | {"maxLength":5} | {"maxLength":3} | MAX_LENGTH_DECREASED
        "##,
    );
}

#[test]
fn number_bounds() {
    check(
        r##"
            maximum increased | {"type":"number","maximum":5} | {"type":"number","maximum":9.5} |
            maximum decreased | {"type":"number","maximum":5} | {"type":"number","maximum":4} | MAXIMUM_DECREASED
            maximum removed | {"type":"number","maximum":5} | {"type":"number"} |
            minimum added | {"type":"number"} | {"type":"number","minimum":0} | MINIMUM_ADDED
            minimum decreased | {"type":"number","minimum":0} | {"type":"number","minimum":-1} |
            minimum increased | {"type":"number","minimum":0} | {"type":"number","minimum":1} | MINIMUM_INCREASED
            exclusiveMinimum decreased | {"type":"number","exclusiveMinimum":2} | {"type":"number","exclusiveMinimum":1} |
            exclusiveMaximum decreased | {"type":"number","exclusiveMaximum":2} | {"type":"number","exclusiveMaximum":1} | EXCLUSIVE_MAXIMUM_DECREASED
            exclusiveMaximum added | {"type":"number"} | {"type":"number","exclusiveMaximum":1} | EXCLUSIVE_MAXIMUM_ADDED
            draft 4 exclusive flag added | {"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":5} | {"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":5,"exclusiveMaximum":true} | EXCLUSIVE_MAXIMUM_ADDED
            multipleOf reduced | {"type":"integer","multipleOf":4} | {"type":"integer","multipleOf":2} |
            multipleOf expanded | {"type":"integer","multipleOf":2} | {"type":"integer","multipleOf":4} | MULTIPLE_OF_EXPANDED
            multipleOf changed | {"type":"integer","multipleOf":3} | {"type":"integer","multipleOf":2} | MULTIPLE_OF_CHANGED
            fractional multipleOf reduced | {"type":"number","multipleOf":0.5} | {"type":"number","multipleOf":0.25} |
            multipleOf added | {"type":"integer"} | {"type":"integer","multipleOf":2} | MULTIPLE_OF_ADDED
            multipleOf removed | {"type":"integer","multipleOf":2} | {"type":"integer"} |
        "##,
    );
}

#[test]
fn arrays() {
    check(
        r##"
            maxItems increased | {"type":"array","maxItems":2} | {"type":"array","maxItems":3} |
            maxItems decreased | {"type":"array","maxItems":3} | {"type":"array","maxItems":2} | MAX_ITEMS_DECREASED
            minItems increased | {"type":"array","minItems":1} | {"type":"array","minItems":2} | MIN_ITEMS_INCREASED
            minItems removed | {"type":"array","minItems":1} | {"type":"array"} |
            uniqueItems removed | {"type":"array","uniqueItems":true} | {"type":"array"} |
            uniqueItems added | {"type":"array"} | {"type":"array","uniqueItems":true} | UNIQUE_ITEMS_ADDED
            items type changed | {"type":"array","items":{"type":"string"}} | {"type":"array","items":{"type":"integer"}} | TYPE_CHANGED
            items widened | {"type":"array","items":{"type":"string"}} | {"type":"array","items":{"type":["string","null"]}} |
            items added | {"type":"array"} | {"type":"array","items":{"type":"string"}} | SCHEMA_ADDED
            items removed | {"type":"array","items":{"type":"string"}} | {"type":"array"} |
            tuple item added to open | {"items":[{"type":"string"}]} | {"items":[{"type":"string"},{"type":"integer"}]} | ITEM_ADDED_TO_OPEN_CONTENT_MODEL
            tuple empty item added to open | {"items":[{"type":"string"}]} | {"items":[{"type":"string"},{}]} |
            tuple item added to closed | {"items":[{"type":"string"}],"additionalItems":false} | {"items":[{"type":"string"},{"type":"integer"}],"additionalItems":false} |
            tuple item removed from open | {"items":[{"type":"string"},{"type":"integer"}]} | {"items":[{"type":"string"}]} |
            tuple item removed from closed | {"items":[{"type":"string"},{"type":"integer"}],"additionalItems":false} | {"items":[{"type":"string"}],"additionalItems":false} | ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL
            tuple item added, covered | {"items":[{"type":"string"}],"additionalItems":{"type":"integer"}} | {"items":[{"type":"string"},{"type":"integer"}],"additionalItems":{"type":"integer"}} |
            tuple item added, not covered | {"items":[{"type":"string"}],"additionalItems":{"type":"integer"}} | {"items":[{"type":"string"},{"type":"string"}],"additionalItems":{"type":"integer"}} | TYPE_CHANGED ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
            tuple item removed, covered | {"items":[{"type":"string"},{"type":"integer"}],"additionalItems":{"type":"number"}} | {"items":[{"type":"string"}],"additionalItems":{"type":"number"}} |
            additionalItems opened | {"items":[{"type":"string"}],"additionalItems":false} | {"items":[{"type":"string"}],"additionalItems":true} |
            additionalItems closed | {"items":[{"type":"string"}]} | {"items":[{"type":"string"}],"additionalItems":false} | ADDITIONAL_ITEMS_REMOVED
            additionalItems narrowed | {"items":[{"type":"string"}]} | {"items":[{"type":"string"}],"additionalItems":{"type":"string"}} | ADDITIONAL_ITEMS_NARROWED
            2020-12 prefixItems added to closed | {"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"}],"items":false} | {"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false} |
            2020-12 prefixItems added to open | {"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"}]} | {"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"},{"type":"integer"}]} | ITEM_ADDED_TO_OPEN_CONTENT_MODEL
            2020-12 items narrowed | {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","items":{"type":"number"}} | {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","items":{"type":"integer"}} | TYPE_NARROWED
        "##,
    );
}

const OPEN_A: &str = r##"{"type":"object","properties":{"a":{"type":"string"}}}"##;

#[test]
fn content_models() {
    check(
        r##"
            optional added to open | {"type":"object","properties":{"a":{"type":"string"}}} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}} | OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL
            required added to open | {"type":"object","properties":{"a":{"type":"string"}}} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["b"]} | REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL
            empty schema added to open | {"type":"object","properties":{"a":{"type":"string"}}} | {"type":"object","properties":{"a":{"type":"string"},"b":{}}} |
            optional added to closed | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false} |
            required added to closed | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["b"],"additionalProperties":false} | REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL
            required with default added to closed | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string","default":"x"}},"required":["b"],"additionalProperties":false} |
            removed from open | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}} | {"type":"object","properties":{"a":{"type":"string"}}} |
            removed from closed | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false} | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false} | PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL
            false removed from closed | {"type":"object","properties":{"a":{"type":"string"},"b":false},"additionalProperties":false} | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false} |
            added, covered by partially open | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":{"type":"string"}} |
            added, not covered by partially open | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}} | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":{"type":"string"}} | TYPE_CHANGED PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
            removed, covered by partially open | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":{"type":"number"}} | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"number"}} |
            removed, not covered by partially open | {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":{"type":"string"}} | {"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}} | TYPE_CHANGED PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
            added, covered by a pattern | {"type":"object","patternProperties":{"^s_":{"type":"string"}}} | {"type":"object","properties":{"s_x":{"type":"string"}},"patternProperties":{"^s_":{"type":"string"}}} |
            added, not covered by a pattern | {"type":"object","patternProperties":{"^s_":{"type":"string"}}} | {"type":"object","properties":{"s_x":{"type":"integer"}},"patternProperties":{"^s_":{"type":"string"}}} | TYPE_CHANGED PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
            2020-12 unevaluatedProperties false keeps it closed | {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"type":"string"}},"unevaluatedProperties":false} | {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"type":"string"},"b":{"type":"string"}},"unevaluatedProperties":false} |
            2020-12 unevaluatedProperties false added | {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"type":"string"}}} | {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"type":"string"}},"unevaluatedProperties":false} | UNEVALUATED_PROPERTIES_REMOVED
        "##,
    );
}

#[test]
fn object_keywords() {
    check(
        r##"
            required added | {"type":"object","properties":{"a":{"type":"string"}}} | {"type":"object","properties":{"a":{"type":"string"}},"required":["a"]} | REQUIRED_ATTRIBUTE_ADDED
            required with default added | {"type":"object","properties":{"a":{"type":"string"}}} | {"type":"object","properties":{"a":{"type":"string","default":""}},"required":["a"]} |
            required removed | {"type":"object","properties":{"a":{"type":"string"}},"required":["a"]} | {"type":"object","properties":{"a":{"type":"string"}}} |
            additionalProperties closed | {"type":"object"} | {"type":"object","additionalProperties":false} | ADDITIONAL_PROPERTIES_REMOVED
            additionalProperties opened | {"type":"object","additionalProperties":false} | {"type":"object"} |
            additionalProperties narrowed | {"type":"object"} | {"type":"object","additionalProperties":{"type":"string"}} | ADDITIONAL_PROPERTIES_NARROWED
            additionalProperties extended | {"type":"object","additionalProperties":{"type":"string"}} | {"type":"object"} |
            additionalProperties schema changed | {"type":"object","additionalProperties":{"type":"string"}} | {"type":"object","additionalProperties":{"type":"integer"}} | TYPE_CHANGED
            minProperties increased | {"type":"object","minProperties":1} | {"type":"object","minProperties":2} | MIN_PROPERTIES_INCREASED
            maxProperties removed | {"type":"object","maxProperties":1} | {"type":"object"} |
            dependency extended | {"dependencies":{"a":["b"]}} | {"dependencies":{"a":["b","c"]}} | DEPENDENCY_ARRAY_EXTENDED
            dependency narrowed | {"dependencies":{"a":["b","c"]}} | {"dependencies":{"a":["b"]}} |
            dependency changed | {"dependencies":{"a":["b"]}} | {"dependencies":{"a":["c"]}} | DEPENDENCY_ARRAY_CHANGED
            dependency added | {"type":"object"} | {"dependencies":{"a":["b"]}} | DEPENDENCY_ARRAY_ADDED
            dependency removed | {"dependencies":{"a":["b"]}} | {"type":"object"} |
            dependentRequired extended | {"$schema":"https://json-schema.org/draft/2019-09/schema","dependentRequired":{"a":["b"]}} | {"$schema":"https://json-schema.org/draft/2019-09/schema","dependentRequired":{"a":["b","c"]}} | DEPENDENCY_ARRAY_EXTENDED
            dependentSchemas added | {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"} | {"$schema":"https://json-schema.org/draft/2020-12/schema","dependentSchemas":{"a":{"required":["b"]}}} | DEPENDENCY_SCHEMA_ADDED
            dependentSchemas removed | {"$schema":"https://json-schema.org/draft/2020-12/schema","dependentSchemas":{"a":{"required":["b"]}}} | {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"} |
        "##,
    );
}

#[test]
fn enums_and_consts() {
    check(
        r##"
            enum extended | {"enum":["a","b"]} | {"enum":["b","a","c"]} |
            enum narrowed | {"enum":["a","b"]} | {"enum":["a"]} | ENUM_ARRAY_NARROWED
            enum changed | {"enum":["a","b"]} | {"enum":["a","c"]} | ENUM_ARRAY_CHANGED
            typed enum extended | {"type":"string","enum":["a"]} | {"type":"string","enum":["a","b"]} |
            // `type` with `enum` is an implicit allOf: the narrowed enum leaves its
            // branch unmatched, which is what Confluent reports.
            typed enum narrowed | {"type":"string","enum":["a","b"]} | {"type":"string","enum":["a"]} | COMBINED_TYPE_SUBSCHEMAS_CHANGED
            enum dropped, type kept | {"type":"string","enum":["a"]} | {"type":"string"} |
            enum added to a type | {"type":"string"} | {"type":"string","enum":["a"]} | TYPE_CHANGED
            const kept | {"const":{"x":1,"y":2}} | {"const":{"y":2,"x":1}} |
            const changed | {"const":"a"} | {"const":"b"} | ENUM_ARRAY_CHANGED
        "##,
    );
}

#[test]
fn combinators() {
    check(
        r##"
            oneOf extended | {"oneOf":[{"type":"string"},{"type":"integer"}]} | {"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]} |
            oneOf narrowed | {"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]} | {"oneOf":[{"type":"string"},{"type":"integer"}]} | SUM_TYPE_NARROWED
            anyOf branch changed | {"anyOf":[{"type":"string"},{"type":"integer"}]} | {"anyOf":[{"type":"string"},{"type":"boolean"}]} | COMBINED_TYPE_SUBSCHEMAS_CHANGED
            anyOf branch widened | {"anyOf":[{"type":"string","maxLength":3},{"type":"integer"}]} | {"anyOf":[{"type":"integer"},{"type":"string"}]} |
            // Each old branch reads only the new branch at the other position: pairing
            // greedily fails where a maximum matching does not.
            branches matched, not paired greedily | {"oneOf":[{"type":"string","maxLength":5},{"type":"string"}]} | {"oneOf":[{"type":"string"},{"type":"string","maxLength":10}]} |
            allOf narrowed | {"allOf":[{"type":"string"},{"maxLength":5}]} | {"allOf":[{"type":"string"}]} |
            allOf extended | {"allOf":[{"type":"string"}]} | {"allOf":[{"type":"string"},{"maxLength":5}]} | PRODUCT_TYPE_EXTENDED
            allOf dropped | {"allOf":[{"type":"string"},{"maxLength":5}]} | {"type":"string"} |
            becomes oneOf with a reading branch | {"type":"string"} | {"oneOf":[{"type":"integer"},{"type":"string"}]} |
            becomes oneOf without one | {"type":"boolean"} | {"oneOf":[{"type":"integer"},{"type":"string"}]} | TYPE_CHANGED
            becomes singleton allOf | {"type":"string"} | {"allOf":[{"type":"string"}]} |
            oneOf to anyOf | {"oneOf":[{"type":"string"},{"type":"integer"}]} | {"anyOf":[{"type":"string"},{"type":"integer"}]} |
            anyOf to oneOf | {"anyOf":[{"type":"string"},{"type":"integer"}]} | {"oneOf":[{"type":"string"},{"type":"integer"}]} | COMBINED_TYPE_CHANGED
            anyOf to allOf | {"anyOf":[{"type":"string"},{"type":"integer"}]} | {"allOf":[{"type":"string"},{"type":"integer"}]} | COMBINED_TYPE_CHANGED
            not narrowed | {"not":{"type":["string","integer"]}} | {"not":{"type":"string"}} |
            not extended | {"not":{"type":"string"}} | {"not":{"type":["string","integer"]}} | NOT_TYPE_EXTENDED
            duplicate branches collapse | {"anyOf":[{"type":"string"},{"type":"string"}]} | {"anyOf":[{"type":"string"}]} |
        "##,
    );
}

const LIST_NODE: &str = r##"{
        "definitions": {"node": {"type": "object", "properties": {
            "value": {"type": "integer"},
            "next": {"$ref": "#/definitions/node"},
            "children": {"type": "array", "items": {"$ref": "#/definitions/node"}}}}},
        "$ref": "#/definitions/node"}"##;

#[test]
fn references_within_a_schema() {
    check(
        r##"
            definition widened | {"definitions":{"n":{"type":"integer"}},"properties":{"a":{"$ref":"#/definitions/n"}}} | {"definitions":{"n":{"type":"number"}},"properties":{"a":{"$ref":"#/definitions/n"}}} |
            definition changed | {"definitions":{"n":{"type":"integer"}},"properties":{"a":{"$ref":"#/definitions/n"}}} | {"definitions":{"n":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/n"}}} | TYPE_CHANGED
            $defs changed | {"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"n":{"type":"integer"}},"properties":{"a":{"$ref":"#/$defs/n"}}} | {"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"n":{"type":"integer","minimum":0}},"properties":{"a":{"$ref":"#/$defs/n"}}} | MINIMUM_ADDED
            inline becomes a $ref | {"properties":{"a":{"type":"integer"}}} | {"definitions":{"n":{"type":"integer"}},"properties":{"a":{"$ref":"#/definitions/n"}}} |
        "##,
    );
    assert!(backward(LIST_NODE, LIST_NODE).is_empty());
    let widened = LIST_NODE.replace(r##""value": {"type": "integer"}"##, r##""value": {"type": "number"}"##);
    assert_eq!(backward(LIST_NODE, &widened), Vec::<&str>::new());
    let changed = LIST_NODE.replace(r##""value": {"type": "integer"}"##, r##""value": {"type": "string"}"##);
    let found = reader_incompatibilities(&schema(&changed), &schema(LIST_NODE));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, IncompatibilityKind::TypeChanged);
    assert_eq!(found[0].path, "#/properties/value");
}

const ADDRESS_V1: &str =
    r##"{"type":"object","properties":{"street":{"type":"string"}},"additionalProperties":false}"##;
const ADDRESS_V2: &str = r##"{"type":"object","properties":{"street":{"type":"string"},"zip":{"type":"string"}},"additionalProperties":false}"##;
const ADDRESS_V3: &str = r##"{"type":"object","properties":{"street":{"type":"string"},"zip":{"type":"string"}},"required":["zip"],"additionalProperties":false}"##;

#[test]
fn references_to_other_schemas_by_name() {
    let url = "https://example.com/address.json";
    let customer = r##"{"type":"object","properties":{"address":{"$ref":"https://example.com/address.json"}}}"##;
    let with = |address: &str| match JsonSchema::parse(customer, &[(url, address)]) {
        Ok(schema) => schema,
        Err(e) => panic!("{e}"),
    };
    assert!(reader_incompatibilities(&with(ADDRESS_V2), &with(ADDRESS_V1)).is_empty());
    let found = reader_incompatibilities(&with(ADDRESS_V3), &with(ADDRESS_V1));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].kind,
        IncompatibilityKind::RequiredPropertyAddedToUnopenContentModel
    );
    assert_eq!(found[0].path, "#/properties/address/properties/zip");
    // FORWARD: the old schema reads the new; a property dropped from a closed model.
    let found = reader_incompatibilities(&with(ADDRESS_V1), &with(ADDRESS_V2));
    assert_eq!(
        found[0].kind,
        IncompatibilityKind::PropertyRemovedFromClosedContentModel
    );

    // A relative name, a fragment into the reference, and a reference's own `$ref`.
    let order = r##"{"$id":"https://example.com/order.json","properties":{
            "to":{"$ref":"address.json"},"street":{"$ref":"address.json#/properties/street"},
            "customer":{"$ref":"customer.json"}}}"##;
    let references = [
        ("address.json", ADDRESS_V1),
        ("customer.json", customer),
        (url, ADDRESS_V1),
    ];
    let parsed = JsonSchema::parse(order, &references);
    let parsed = parsed.unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed
        .validate(&serde_json::json!({"to": {"street": "x"}, "street": "y"}))
        .is_ok());
    assert!(parsed.validate(&serde_json::json!({"to": {"street": 1}})).is_err());
    assert!(parsed
        .validate(&serde_json::json!({"customer": {"address": {"zip": "1"}}}))
        .is_err());
    assert!(reader_incompatibilities(&parsed, &parsed).is_empty());
}

#[test]
fn schemas_that_do_not_parse() {
    for (text, references) in [
        ("{not json", &[][..]),
        ("", &[]),
        ("[1, 2]", &[]),
        (r##""string""##, &[]),
        ("12", &[]),
        (r##"{"type":"strin"}"##, &[]),
        (r##"{"type":5}"##, &[]),
        (r##"{"type":[]}"##, &[]),
        (r##"{"properties":{"a":5}}"##, &[]),
        (r##"{"minLength":-1}"##, &[]),
        (r##"{"exclusiveMinimum":true}"##, &[]),
        (
            r##"{"$schema":"http://json-schema.org/draft-04/schema#","exclusiveMinimum":5}"##,
            &[],
        ),
        (r##"{"pattern":"("}"##, &[]),
        (r##"{"$ref":"https://example.com/unknown.json"}"##, &[]),
        (r##"{"$ref":"other.json"}"##, &[]),
        (r##"{"$ref":"#/definitions/missing"}"##, &[]),
        (
            r##"{"$ref":"https://example.com/a.json"}"##,
            &[("https://example.com/a.json", "{bad")],
        ),
        (
            r##"{"$ref":"https://example.com/a.json"}"##,
            &[("https://example.com/a.json", r##"{"type":"nope"}"##)],
        ),
        (
            r##"{"$ref":"https://example.com/a.json"}"##,
            &[("https://example.com/a.json", r##"{"$ref":"b.json"}"##)],
        ),
    ] {
        let parsed = JsonSchema::parse(text, references);
        assert!(parsed.is_err(), "{text} parsed");
    }
    let unknown = JsonSchema::parse(r##"{"$ref":"https://example.com/unknown.json"}"##, &[]);
    let message = unknown.err().unwrap_or_default();
    assert!(message.contains("https://example.com/unknown.json"), "{message}");
}

#[test]
fn drafts() {
    let draft4 = r##"{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","minimum":0,"exclusiveMinimum":true}"##;
    let parsed = schema(draft4);
    assert!(parsed.validate(&serde_json::json!(0)).is_err());
    assert!(parsed.validate(&serde_json::json!(1)).is_ok());
    for draft in [
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    ] {
        schema(&format!(
            r##"{{"$schema":"{draft}","type":"number","exclusiveMinimum":0}}"##
        ));
    }
    // Without `$schema`, draft 7: 2020-12's `prefixItems` is an unknown keyword.
    let draft7 = schema(r##"{"prefixItems":[{"type":"string"}]}"##);
    assert!(draft7.validate(&serde_json::json!([1])).is_ok());
    let draft2020 =
        schema(r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"}]}"##);
    assert!(draft2020.validate(&serde_json::json!([1])).is_err());
}

#[test]
fn canonical_and_normalized_strings() {
    let text = "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"b\": { \"type\": \"string\", \"description\": \"a  \\\"b\\\" c\" },\n    \"a\": {\"type\" : \"integer\"}\n  },\n  \"required\": [ \"b\" ]\n}\n";
    let parsed = schema(text);
    assert_eq!(
        parsed.canonical_string(),
        r##"{"type":"object","properties":{"b":{"type":"string","description":"a  \"b\" c"},"a":{"type":"integer"}},"required":["b"]}"##
    );
    assert_eq!(
        parsed.normalized_string(),
        r##"{"properties":{"a":{"type":"integer"},"b":{"description":"a  \"b\" c","type":"string"}},"required":["b"],"type":"object"}"##
    );
    assert_eq!(schema(" true ").canonical_string(), "true");
    assert_eq!(schema(" true ").normalized_string(), "true");
}

#[test]
fn record_names() {
    assert_eq!(
        schema(r##"{"title":"Order","type":"object"}"##).record_name(),
        Some("Order".into())
    );
    assert_eq!(schema(r##"{"type":"object"}"##).record_name(), None);
    assert_eq!(schema(r##"{"$comment":"no title"}"##).record_name(), None);
    assert_eq!(schema("true").record_name(), None);
}

#[test]
fn payload_validation() {
    let parsed = schema(
        r##"{"type":"object","properties":{"a":{"type":"integer"},"items":{"type":"array","items":{"type":"string"}}},"required":["a"]}"##,
    );
    assert!(parsed.validate(&serde_json::json!({"a": 1, "items": ["x"]})).is_ok());
    let missing = parsed.validate(&serde_json::json!({"b": 1})).err().unwrap_or_default();
    assert!(missing.contains("'#'") && missing.contains("\"a\""), "{missing}");
    let wrong = parsed
        .validate(&serde_json::json!({"a": 1, "items": ["x", 2]}))
        .err()
        .unwrap_or_default();
    assert!(wrong.contains("#/items/1"), "{wrong}");
    let long = "x".repeat(10_000);
    let message = parsed
        .validate(&serde_json::json!({"a": long}))
        .err()
        .unwrap_or_default();
    assert!(message.len() < 1_000, "{} chars", message.len());
    assert!(schema("false").validate(&serde_json::json!(null)).is_err());
    assert!(schema("true").validate(&serde_json::json!({"any": ["thing"]})).is_ok());
}

#[test]
fn messages_name_kind_path_and_details() {
    let found = reader_incompatibilities(
        &schema(r##"{"type":"object","properties":{"a":{"type":"string"},"b/c":{"type":"string"}}}"##),
        &schema(OPEN_A),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "#/properties/b~1c");
    assert_eq!(
        found[0].to_string(),
        "{errorType:'OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL', description:'The old schema has an open \
             content model and the new schema has a property or item at path '#/properties/b~1c' which is missing \
             in the old schema', additionalInfo:'b/c'}"
    );
    let found = reader_incompatibilities(
        &schema(r##"{"type":"array","items":{"type":"string","maxLength":3}}"##),
        &schema(r##"{"type":"array","items":{"type":"string","maxLength":5}}"##),
    );
    assert_eq!(found[0].path, "#/items/maxLength");
    assert_eq!(found[0].additional_info, "old: 5, new: 3");
    let root = reader_incompatibilities(&schema(r##"{"type":"integer"}"##), &schema(STRING));
    assert_eq!(root[0].path, "#/");
    assert_eq!(root[0].additional_info, "old: string, new: integer");
}

#[test]
fn forward_is_the_other_direction() {
    let added = r##"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"##;
    // FORWARD: the old schema reads data written with the new one.
    assert!(reader_incompatibilities(&schema(OPEN_A), &schema(added)).is_empty());
    assert_eq!(
        backward(OPEN_A, added),
        ["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"]
    );
}

#[test]
fn odd_schemas_never_panic() {
    let odd = [
        "true",
        "false",
        "{}",
        r##"{"$ref":"#"}"##,
        r##"{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"properties":{"x":{"$ref":"#/definitions/a"}}}"##,
        r##"{"type":["string","null","array","object","number","integer","boolean"]}"##,
        r##"{"items":true,"additionalItems":false}"##,
        r##"{"items":false}"##,
        r##"{"items":[true,false]}"##,
        r##"{"properties":{"a":false,"b":true},"additionalProperties":{}}"##,
        r##"{"properties":{"a/b":{"$ref":"#/properties/a~1b"}}}"##,
        r##"{"allOf":[true],"anyOf":[true],"oneOf":[false,{}]}"##,
        r##"{"not":{"not":{"not":true}}}"##,
        r##"{"if":{"type":"string"},"then":{"minLength":1},"else":{"type":"null"}}"##,
        r##"{"enum":[null,1,"a",[1],{"b":2}],"const":{"b":2}}"##,
        r##"{"dependencies":{"a":["b"],"c":{"required":["d"]}},"patternProperties":{"^x":false}}"##,
        r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"t":{"$anchor":"t","type":"string"}},"items":{"$ref":"#t"},"unevaluatedItems":false,"unevaluatedProperties":{"type":"string"}}"##,
        r##"{"$schema":"https://json-schema.org/draft/2019-09/schema","$recursiveAnchor":true,"items":{"$recursiveRef":"#"}}"##,
        r##"{"$id":"https://example.com/root.json","definitions":{"x":{"$id":"x.json","type":"string"}},"properties":{"a":{"$ref":"x.json"}}}"##,
        r##"{"type":"number","multipleOf":1e-300,"maximum":1e308}"##,
        r##"{"$schema":"https://example.com/custom-meta","type":"string"}"##,
    ];
    let parsed: Vec<JsonSchema> = odd.iter().map(|text| schema(text)).collect();
    for reader in &parsed {
        for writer in &parsed {
            for incompatibility in reader_incompatibilities(reader, writer) {
                assert!(!incompatibility.to_string().is_empty());
            }
        }
        let _ = reader.canonical_string();
        let _ = reader.normalized_string();
        let _ = reader.record_name();
    }
}

#[test]
fn a_self_referencing_chain_resolves_to_nothing_comparable() {
    let looped = schema(
        r##"{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"$ref":"#/definitions/a"}"##,
    );
    assert!(reader_incompatibilities(&looped, &looped).is_empty());
}

#[test]
fn deep_and_wide_schemas_stay_within_limits() {
    // Nested oneOfs of many branches: the memo keeps it to one comparison a pair.
    let mut text = String::from(r##"{"type":"string"}"##);
    for _ in 0..20 {
        let branches: Vec<String> = (0..8)
            .map(|i| format!(r##"{{"allOf":[{text},{{"minLength":{i}}}]}}"##))
            .collect();
        text = format!(r##"{{"oneOf":[{}]}}"##, branches.join(","));
        if text.len() > 200_000 {
            break;
        }
    }
    let nested = schema(&text);
    let found = reader_incompatibilities(&nested, &nested);
    assert!(found
        .iter()
        .any(|f| f.kind == IncompatibilityKind::ComparisonLimitExceeded));

    // Thousands of branches naming one definition: every pair is remembered, but
    // each still counts.
    let branches: Vec<String> = (0..1_500)
        .map(|i| format!(r##"{{"$ref":"#/definitions/x","title":"{i}"}}"##))
        .collect();
    let text = format!(
        r##"{{"definitions":{{"x":{{"type":"string"}}}},"oneOf":[{}]}}"##,
        branches.join(",")
    );
    let wide = schema(&text);
    let found = reader_incompatibilities(&wide, &wide);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, IncompatibilityKind::ComparisonLimitExceeded);

    // A long chain of definitions, on a stack the size of a Tokio worker's.
    let chain = |length: usize, leaf: &str| {
        let definitions: Vec<String> = (0..length)
            .map(|i| {
                format!(
                    r##""d{i}":{{"type":"object","properties":{{"next":{{"$ref":"#/definitions/d{}"}}}}}}"##,
                    i + 1
                )
            })
            .collect();
        format!(
            r##"{{"definitions":{{{},"d{length}":{{"type":"{leaf}"}}}},"$ref":"#/definitions/d0"}}"##,
            definitions.join(",")
        )
    };
    let compare = move |old: String, new: String| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || backward(&old, &new))
            .map(|thread| thread.join())
    };
    let short = compare(chain(100, "integer"), chain(100, "number"));
    assert!(matches!(short, Ok(Ok(found)) if found.is_empty()));
    let short = compare(chain(100, "integer"), chain(100, "string"));
    assert!(matches!(short, Ok(Ok(found)) if found == ["TYPE_CHANGED"]));
    let long = compare(chain(1_000, "integer"), chain(1_000, "number"));
    assert!(matches!(long, Ok(Ok(found)) if found == ["COMPARISON_LIMIT_EXCEEDED"]));
}

#[test]
fn schemas_are_shareable() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<JsonSchema>();
}
