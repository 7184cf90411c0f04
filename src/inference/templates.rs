//! Prompt templates (MiniJinja): every variant's `system_template`, `user_template` and
//! `assistant_template`, compiled once when the configuration is built.
//!
//! A template is registered under its TOML path (`functions.F.variants.V.user_template`), so
//! a syntax or render error names the variant as well as the line. `{% include %}` reads files
//! only when `gateway.template_filesystem_access.base_path` is set, and only below it:
//! names are relative, no `.`/`..` segments, and the resolved file (symlinks followed) must still
//! lie inside the base directory.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// Every template of one configuration.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// An empty set. `include_base` is the directory `{% include %}` may read from; `None` turns
    /// includes off (the default, as in the TensorZero Gateway).
    pub fn new(include_base: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        // A missing variable is an error, not an empty string: a prompt silently missing its
        // data is worse than a 400 naming the variable.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Prompts are not HTML.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        match include_base {
            None => env.set_loader(|name: &str| -> Result<Option<String>, minijinja::Error> {
                Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "cannot include `{name}`: `{{% include %}}` needs `gateway.template_filesystem_access.base_path` (the directory includes are read from)"
                    ),
                ))
            }),
            Some(base) => {
                let base = base.canonicalize().map_err(|e| {
                    format!(
                        "template include directory `{}` cannot be opened: {e}",
                        base.display()
                    )
                })?;
                env.set_loader(move |name: &str| load_include(&base, name));
            }
        }
        Ok(Self { env })
    }

    /// Reads and compiles the template file `path` under `key`.
    pub fn add(&mut self, key: &str, path: &Path) -> Result<(), String> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read template `{}`: {e}", path.display()))?;
        self.env
            .add_template_owned(key.to_owned(), source)
            .map_err(|e| format!("template `{}`: {e}", path.display()))
    }

    /// Whether a template is registered under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.env.get_template(key).is_ok()
    }

    /// The top-level variables the template reads without defining them.
    pub fn variables(&self, key: &str) -> HashSet<String> {
        self.env
            .get_template(key)
            .map(|t| t.undeclared_variables(false))
            .unwrap_or_default()
    }

    /// Renders the template under `key` with `context` (an object; its keys are the variables).
    pub fn render(&self, key: &str, context: &Value) -> Result<String, String> {
        let template = self
            .env
            .get_template(key)
            .map_err(|e| format!("template `{key}`: {e}"))?;
        template
            .render(minijinja::value::Serde(context))
            .map_err(|e| render_error(&e))
    }
}

/// A render error and the errors it wraps (an include's own failure is the interesting part).
fn render_error(e: &minijinja::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

fn load_include(base: &Path, name: &str) -> Result<Option<String>, minijinja::Error> {
    let refuse = |why: &str| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot include `{name}`: {why}"),
        )
    };
    let relative = Path::new(name);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(refuse(
            "include paths are relative to `template_filesystem_access.base_path`, without `.` or `..`",
        ));
    }
    let path: PathBuf = base.join(relative);
    let resolved = match path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(&e.to_string())),
    };
    if !resolved.starts_with(base) {
        return Err(refuse(
            "it resolves outside `template_filesystem_access.base_path`",
        ));
    }
    match std::fs::read_to_string(&resolved) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refuse(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn renders_with_strict_variables_and_no_escaping() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "t.minijinja", "Hello <{{ name }}> & co");
        let mut t = Templates::new(None).unwrap();
        t.add("functions.f.variants.v.user_template", &file)
            .unwrap();
        let key = "functions.f.variants.v.user_template";
        assert_eq!(
            t.render(key, &json!({"name": "Ada"})).unwrap(),
            "Hello <Ada> & co"
        );
        let err = t.render(key, &json!({})).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        assert!(err.contains(key), "{err}");
        assert_eq!(t.variables(key), HashSet::from(["name".to_owned()]));
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "bad.minijinja", "line one\n{% if %}");
        let err = Templates::new(None)
            .unwrap()
            .add("functions.f.variants.v.system_template", &file)
            .unwrap_err();
        assert!(err.contains("bad.minijinja"), "{err}");
        assert!(err.contains(":2"), "{err}");
    }

    #[test]
    fn includes_are_off_unless_enabled() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "part.txt", "PART");
        let file = write(dir.path(), "t.minijinja", "{% include 'part.txt' %}");
        let mut t = Templates::new(None).unwrap();
        t.add("k", &file).unwrap();
        let err = t.render("k", &json!({})).unwrap_err();
        assert!(err.contains("template_filesystem_access"), "{err}");

        let mut t = Templates::new(Some(dir.path())).unwrap();
        t.add("k", &file).unwrap();
        assert_eq!(t.render("k", &json!({})).unwrap(), "PART");
    }

    #[test]
    fn includes_cannot_leave_the_base_directory() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.txt", "SECRET");
        let base = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            base.path().join("link.txt"),
        )
        .unwrap();
        let secret = outside.path().join("secret.txt");
        for name in [
            "../secret.txt".to_owned(),
            secret.display().to_string(),
            "./link.txt".to_owned(),
            "link.txt".to_owned(),
        ] {
            let file = write(
                base.path(),
                "t.minijinja",
                &format!("{{% include '{name}' %}}"),
            );
            let mut t = Templates::new(Some(base.path())).unwrap();
            t.add("k", &file).unwrap();
            let err = t.render("k", &json!({})).unwrap_err();
            assert!(!err.contains("SECRET"), "{name}: {err}");
            assert!(err.contains("cannot include"), "{name}: {err}");
        }
    }
}
