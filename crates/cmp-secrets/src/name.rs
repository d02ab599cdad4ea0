//! Secret names: the rules every backend enforces, so a name valid here is valid everywhere.

use crate::SecretError;

/// Longest secret name, in characters.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a secret name: 1 to [`MAX_NAME_LEN`] characters of `[a-z0-9._/-]`, no leading `/`,
/// no `..`, and no empty or `.` path segment (so no trailing `/` and no `//`).
pub fn validate_name(name: &str) -> Result<(), SecretError> {
    let invalid = |why: &str| Err(SecretError::InvalidName(format!("{name:?}: {why}")));
    if name.is_empty() {
        return Err(SecretError::InvalidName("the name is empty".into()));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_LEN {
        // Not echoed: an over-long name is more likely garbage than a name.
        return Err(SecretError::InvalidName(format!(
            "the name is {chars} characters long; the limit is {MAX_NAME_LEN}"
        )));
    }
    if let Some(c) =
        name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '/' | '-'))
    {
        return invalid(&format!("{c:?} is not allowed (only a-z 0-9 . _ / -)"));
    }
    if name.starts_with('/') {
        return invalid("must not start with '/'");
    }
    if name.contains("..") {
        return invalid("must not contain '..'");
    }
    if name.split('/').any(|segment| segment.is_empty() || segment == ".") {
        return invalid("has an empty or '.' path segment");
    }
    Ok(())
}
