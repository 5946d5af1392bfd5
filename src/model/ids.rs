//! What an id may be: ids become MQTT topic levels and store tags.

/// Characters allowed in ids: they become MQTT topic levels and store tags.
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("id is empty".into());
    }
    if id.len() > 128 {
        return Some(format!("id is {} bytes long, the limit is 128", id.len()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Some(format!(
            "id {id:?} contains {c:?}; use letters, digits, '-', '_', '.', ':'"
        ));
    }
    None
}
