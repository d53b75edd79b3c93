//! How a compatibility finding is written, the same for every schema type.

/// Confluent's rendering of one difference, the same for every schema type:
/// `{errorType:'...', description:'...', additionalInfo:'...'}`.
pub fn write_difference(
    f: &mut std::fmt::Formatter<'_>,
    error_type: &str,
    description: &str,
    additional_info: &str,
) -> std::fmt::Result {
    write!(
        f,
        "{{errorType:'{error_type}', description:'{description}', additionalInfo:'{additional_info}'}}"
    )
}
