//! The registry's id and version rules, applied through `_schemas` records as a
//! running registry does (each record also round-trips through its JSON form).

use super::*;

fn apply_all(store: &mut Store, records: &[Record]) {
    for record in records {
        let (key, value) = record.encode();
        let decoded = Record::decode(&key, value.as_deref()).unwrap();
        assert_eq!(&decoded, record, "round trip of {}", String::from_utf8_lossy(&key));
        store.apply(&decoded);
    }
}

fn register(store: &mut Store, subject: &str, schema: &str) -> (i32, i32) {
    match store.plan_register(subject, SchemaType::Avro, schema, &[]) {
        Registration::Existing { id, version } => (id, version),
        Registration::New { id, version, records } => {
            apply_all(store, &records);
            (id, version)
        }
    }
}

#[test]
fn ids_are_global_and_versions_count_per_subject() {
    let mut store = Store::default();
    assert_eq!(register(&mut store, "a", "s1"), (1, 1));
    assert_eq!(register(&mut store, "a", "s2"), (2, 2));
    assert_eq!(register(&mut store, "b", "s1"), (1, 1), "the same schema keeps its id");
    assert_eq!(register(&mut store, "a", "s1"), (1, 1), "already live: nothing new");
    assert_eq!(store.subjects(false), vec!["a", "b"]);
    assert_eq!(store.versions("a", false).unwrap(), vec![1, 2]);
    assert_eq!(store.version("a", VersionId::Latest, false).unwrap().schema, "s2");
    assert_eq!(store.versions_of_id(1, false), vec![("a", 1), ("b", 1)]);
    assert_eq!(store.schema(2).unwrap().schema, "s2");
    assert_eq!(store.schema(3), Err(RegistryError::SchemaNotFound("3".into())));
    assert_eq!(
        store.lookup("a", SchemaType::Avro, "s2", &[], false).unwrap().version,
        2
    );
    assert_eq!(
        store.lookup("a", SchemaType::Avro, "s3", &[], false),
        Err(RegistryError::SchemaNotFound(String::new()))
    );
    assert_eq!(
        store.lookup("c", SchemaType::Avro, "s1", &[], false),
        Err(RegistryError::SubjectNotFound("c".into()))
    );
}

#[test]
fn soft_deletes_hide_and_permanent_deletes_need_them_first() {
    let mut store = Store::default();
    register(&mut store, "a", "s1");
    register(&mut store, "a", "s2");
    assert_eq!(
        store.plan_delete_version("a", VersionId::Number(2), true),
        Err(RegistryError::VersionNotSoftDeleted(2))
    );
    let (version, record) = store.plan_delete_version("a", VersionId::Latest, false).unwrap();
    assert_eq!(version, 2);
    apply_all(&mut store, &[record]);
    assert_eq!(store.versions("a", false).unwrap(), vec![1]);
    assert_eq!(store.versions("a", true).unwrap(), vec![1, 2]);
    assert_eq!(
        store.version("a", VersionId::Number(2), false),
        Err(RegistryError::VersionNotFound(2))
    );
    assert_eq!(
        store.schema(2).unwrap().schema,
        "s2",
        "ids of soft-deleted versions resolve"
    );
    assert_eq!(
        store.plan_delete_version("a", VersionId::Number(2), false),
        Err(RegistryError::VersionSoftDeleted(2)),
        "deleted already: only permanently now"
    );
    assert_eq!(
        store.plan_delete_version("a", VersionId::Number(9), false),
        Err(RegistryError::VersionNotFound(9))
    );
    let (_, record) = store.plan_delete_version("a", VersionId::Number(2), true).unwrap();
    apply_all(&mut store, &[record]);
    assert_eq!(store.versions("a", true).unwrap(), vec![1]);
    assert_eq!(
        register(&mut store, "a", "s3"),
        (3, 3),
        "version numbers are not reused"
    );
}

#[test]
fn a_subject_is_deleted_softly_then_for_good_and_loses_its_config() {
    let mut store = Store::default();
    register(&mut store, "a", "s1");
    register(&mut store, "a", "s2");
    apply_all(
        &mut store,
        &[Record::Config {
            subject: Some("a".into()),
            level: Some(CompatibilityLevel::Full),
        }],
    );
    assert_eq!(
        store.plan_delete_subject("a", true),
        Err(RegistryError::SubjectNotSoftDeleted("a".into()))
    );
    let (versions, records) = store.plan_delete_subject("a", false).unwrap();
    assert_eq!(versions, vec![1, 2]);
    apply_all(&mut store, &records);
    assert!(store.subjects(false).is_empty());
    assert_eq!(store.subjects(true), vec!["a"]);
    assert_eq!(
        store.plan_delete_subject("a", false),
        Err(RegistryError::SubjectSoftDeleted("a".into()))
    );
    assert_eq!(
        store.effective_config("a"),
        CompatibilityLevel::Full,
        "kept while versions remain"
    );
    let (versions, records) = store.plan_delete_subject("a", true).unwrap();
    assert_eq!(versions, vec![1, 2]);
    apply_all(&mut store, &records);
    assert!(store.subjects(true).is_empty());
    assert_eq!(
        store.effective_config("a"),
        CompatibilityLevel::Backward,
        "gone with the subject"
    );
    assert_eq!(store.schema(1), Err(RegistryError::SchemaNotFound("1".into())));
}

#[test]
fn a_soft_deleted_schema_registered_again_keeps_its_id_in_a_new_version() {
    let mut store = Store::default();
    register(&mut store, "a", "s1");
    let (_, record) = store.plan_delete_version("a", VersionId::Number(1), false).unwrap();
    apply_all(&mut store, &[record]);
    let Registration::New { id, version, records } = store.plan_register("a", SchemaType::Avro, "s1", &[]) else {
        panic!("a soft-deleted schema is registered anew");
    };
    assert_eq!((id, version), (1, 2));
    assert_eq!(
        records.len(),
        2,
        "the old deleted version removed for good, then the new one"
    );
    apply_all(&mut store, &records);
    assert_eq!(store.versions("a", true).unwrap(), vec![2]);
}

#[test]
fn referenced_versions_cannot_be_deleted() {
    let mut store = Store::default();
    register(&mut store, "address", "addr");
    let reference = Reference {
        name: "n.Address".into(),
        subject: "address".into(),
        version: 1,
    };
    let Registration::New { records, id, .. } =
        store.plan_register("person", SchemaType::Avro, "p", std::slice::from_ref(&reference))
    else {
        panic!("new");
    };
    apply_all(&mut store, &records);
    assert_eq!(store.referenced_by("address", 1), vec![id]);
    assert_eq!(
        store.plan_delete_version("address", VersionId::Number(1), false),
        Err(RegistryError::ReferenceExists {
            subject: "address".into(),
            version: 1
        })
    );
    assert_eq!(store.schema(id).unwrap().references, vec![reference]);
}

#[test]
fn configs_and_modes_fall_back_to_the_registrys() {
    let mut store = Store::default();
    assert_eq!(store.effective_config("s"), CompatibilityLevel::Backward);
    assert_eq!(store.effective_mode("s"), Mode::ReadWrite);
    apply_all(
        &mut store,
        &[
            Record::Config {
                subject: None,
                level: Some(CompatibilityLevel::None),
            },
            Record::Mode {
                subject: Some("s".into()),
                mode: Some(Mode::Import),
            },
        ],
    );
    assert_eq!(store.effective_config("s"), CompatibilityLevel::None);
    assert_eq!(store.subject_config(Some("s")), None);
    assert_eq!(store.effective_mode("s"), Mode::Import);
    assert_eq!(store.effective_mode("t"), Mode::ReadWrite);
    apply_all(
        &mut store,
        &[Record::Mode {
            subject: Some("s".into()),
            mode: None,
        }],
    );
    assert_eq!(store.effective_mode("s"), Mode::ReadWrite);
}

#[test]
fn version_ids_parse_as_confluent_allows() {
    assert_eq!(VersionId::parse("latest"), Ok(VersionId::Latest));
    assert_eq!(VersionId::parse("LATEST"), Ok(VersionId::Latest));
    assert_eq!(VersionId::parse("-1"), Ok(VersionId::Latest));
    assert_eq!(VersionId::parse("7"), Ok(VersionId::Number(7)));
    for bad in ["0", "-2", "x", "", "2147483648"] {
        assert!(
            matches!(VersionId::parse(bad), Err(RegistryError::InvalidVersion(_))),
            "{bad}"
        );
    }
}

#[test]
fn records_written_by_other_registries_are_read() {
    let key = br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#;
    let value = br#"{"subject":"s","version":1,"id":9,"schema":"\"string\"","deleted":false}"#;
    let Record::Schema { value: Some(v), .. } = Record::decode(key, Some(value)).unwrap() else {
        panic!("a schema record");
    };
    assert_eq!(
        (v.id, v.schema_type, v.schema.as_str()),
        (9, SchemaType::Avro, "\"string\"")
    );
    let config = br#"{"keytype":"CONFIG","subject":null,"magic":0}"#;
    assert_eq!(
        Record::decode(config, Some(br#"{"compatibilityLevel":"FULL"}"#)).unwrap(),
        Record::Config {
            subject: None,
            level: Some(CompatibilityLevel::Full)
        }
    );
    assert_eq!(
        Record::decode(config, Some(b"")).unwrap(),
        Record::Config {
            subject: None,
            level: None
        }
    );
    assert!(Record::decode(b"{", None).is_err());
    assert!(Record::decode(br#"{"keytype":"WHAT","magic":0}"#, None).is_err());
    assert_eq!(
        Record::decode(br#"{"keytype":"NOOP","magic":0}"#, None).unwrap(),
        Record::Noop
    );
}
