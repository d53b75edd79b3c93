//! JSON Schema: parsing with references, canonical form, Confluent's compatibility
//! rules (`SchemaDiff`) and payload validation.
