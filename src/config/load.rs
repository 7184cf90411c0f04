//! Reading `tensorzero.toml`: glob expansion, merging several files, resolving relative paths,
//! and turning every problem into an error that names the file, the line and the TOML path.
//!
//! The files are parsed into toml's spanned tables first, so that after the typed
//! deserialization fails (or a semantic check does) we can still point at the exact line.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use super::path::{PathSegment, TomlPath};

/// Where something is in the config files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong and how to fix it.
    pub message: String,
    /// The TOML path of the offending key, when there is one.
    pub path: Option<TomlPath>,
    /// Where it is, when it could be found.
    pub location: Option<Location>,
}

impl ConfigError {
    /// An error not tied to a key.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            path: None,
            location: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if let Some(path) = self.path.as_ref().filter(|p| !p.0.is_empty()) {
            write!(f, "`{path}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in a configuration; it is loaded only when there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// A parsed config file, kept so errors can point into it.
struct SourceFile {
    path: PathBuf,
    text: &'static str,
    root: DeTable<'static>,
}

/// The files a configuration came from.
#[derive(Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.files.iter().map(|s| &s.path))
            .finish()
    }
}

impl Sources {
    /// The files, in the order they were merged.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// The directory of the only file, when there is exactly one.
    pub fn single_dir(&self) -> Option<&Path> {
        match self.files.as_slice() {
            [one] => one.path.parent(),
            _ => None,
        }
    }

    /// Each file's parsed table, in merge order (for checks that read keys serde ignores).
    pub(crate) fn roots(&self) -> impl Iterator<Item = &DeTable<'static>> {
        self.files.iter().map(|f| &f.root)
    }

    /// The concatenated text of every file (for the config hash).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.text)
    }

    /// Where `path` is defined: the deepest prefix of it found in any file.
    pub fn locate(&self, path: &TomlPath) -> Option<Location> {
        let mut best: Option<(usize, Location)> = None;
        for file in &self.files {
            if let Some((depth, offset)) = deepest(&file.root, &path.0) {
                if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                    best = Some((depth, location_of(file, offset)));
                }
            }
        }
        best.map(|(_, loc)| loc)
    }

    /// Finds the first key named `key` anywhere under `under` (depth first), for errors whose
    /// path stops above the offending key.
    pub fn find_key_under(&self, under: &TomlPath, key: &str) -> Option<(TomlPath, Location)> {
        for file in &self.files {
            let Some(node) = node_at(&file.root, &under.0) else {
                continue;
            };
            if let Some((path, offset)) = search_key(node, key, under.clone()) {
                return Some((path, location_of(file, offset)));
            }
        }
        None
    }

    /// An error about `path`, located in the files.
    pub fn error_at(&self, path: TomlPath, message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            location: self.locate(&path),
            path: Some(path),
        }
    }
}

enum Node<'a> {
    Table(&'a DeTable<'static>),
    Array(&'a [Spanned<DeValue<'static>>]),
}

fn node_at<'a>(root: &'a DeTable<'static>, path: &[PathSegment]) -> Option<Node<'a>> {
    let mut node = Node::Table(root);
    for seg in path {
        let value = match (&node, seg) {
            (Node::Table(t), PathSegment::Key(k)) => t.get(k.as_str())?,
            (Node::Array(a), PathSegment::Index(i)) => a.get(*i)?,
            _ => return None,
        };
        node = match value.get_ref() {
            DeValue::Table(t) => Node::Table(t),
            DeValue::Array(a) => Node::Array(a),
            _ => return None,
        };
    }
    Some(node)
}

/// How many segments of `path` exist in `root`, and the byte offset of the last one found.
fn deepest(root: &DeTable<'static>, path: &[PathSegment]) -> Option<(usize, usize)> {
    let mut node = Node::Table(root);
    let mut found = None;
    for (depth, seg) in path.iter().enumerate() {
        let (offset, value) = match (&node, seg) {
            (Node::Table(t), PathSegment::Key(k)) => {
                let (key, value) = t.get_key_value(k.as_str())?;
                (key.span().start, value)
            }
            (Node::Array(a), PathSegment::Index(i)) => {
                let value = a.get(*i)?;
                (value.span().start, value)
            }
            _ => return found,
        };
        found = Some((depth + 1, offset));
        node = match value.get_ref() {
            DeValue::Table(t) => Node::Table(t),
            DeValue::Array(a) => Node::Array(a),
            _ => return found,
        };
    }
    found
}

fn search_key(node: Node<'_>, key: &str, path: TomlPath) -> Option<(TomlPath, usize)> {
    match node {
        Node::Table(t) => {
            if let Some((k, _)) = t.get_key_value(key) {
                return Some((path.key(key), k.span().start));
            }
            for (k, v) in t.iter() {
                let child = path.key(k.get_ref().as_ref());
                let hit = match v.get_ref() {
                    DeValue::Table(t) => search_key(Node::Table(t), key, child),
                    DeValue::Array(a) => search_key(Node::Array(a), key, child),
                    _ => None,
                };
                if hit.is_some() {
                    return hit;
                }
            }
            None
        }
        Node::Array(a) => a.iter().enumerate().find_map(|(i, v)| match v.get_ref() {
            DeValue::Table(t) => search_key(Node::Table(t), key, path.index(i)),
            _ => None,
        }),
    }
}

fn location_of(file: &SourceFile, offset: usize) -> Location {
    let before = &file.text[..offset.min(file.text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Location {
        file: file.path.clone(),
        line,
        column,
    }
}

/// Keys whose values are file paths, relative to the file that sets them.
const FUNCTION_PATH_KEYS: [&str; 4] = [
    "system_schema",
    "user_schema",
    "assistant_schema",
    "output_schema",
];
const VARIANT_PATH_KEYS: [&str; 4] = [
    "system_template",
    "user_template",
    "assistant_template",
    "system_instructions",
];

/// Expands `pattern` (a path or a glob) and reads every file it names.
pub fn read_files(pattern: &str) -> Result<Sources, ConfigErrors> {
    let paths = expand(pattern)?;
    let mut sources = Sources::default();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(format!("cannot read config file `{}`: {e}", path.display()))
        })?;
        // The spanned table borrows the text. Config files are small and read once per load,
        // so leaking the text is the simple way to keep the table for the life of the process
        // (it is what error locations point into).
        let text: &'static str = Box::leak(text.into_boxed_str());
        let parsed = DeTable::parse(text).map_err(|e| {
            let placeholder = SourceFile {
                path: path.clone(),
                text,
                root: DeTable::default(),
            };
            ConfigError {
                message: format!("invalid TOML: {}", e.message()),
                path: None,
                location: e.span().map(|s| location_of(&placeholder, s.start)),
            }
        })?;
        let mut root = parsed.into_inner();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        resolve_relative_paths(&mut root, &dir);
        sources.files.push(SourceFile { path, text, root });
    }
    Ok(sources)
}

/// The files `pattern` names, in merge order.
pub(crate) fn expand(pattern: &str) -> Result<Vec<PathBuf>, ConfigErrors> {
    let is_glob = pattern.contains(['*', '?', '[']);
    if !is_glob {
        let path = PathBuf::from(pattern);
        if !path.is_file() {
            return Err(ConfigError::new(format!(
                "config file `{pattern}` not found (or not a file); pass an existing file or a glob such as `config/*.toml`"
            ))
            .into());
        }
        return Ok(vec![path]);
    }
    let mut paths: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| ConfigError::new(format!("invalid glob `{pattern}`: {e}")))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(
            ConfigError::new(format!("no config file matches the glob `{pattern}`")).into(),
        );
    }
    Ok(paths)
}

fn resolve_relative_paths(root: &mut DeTable<'static>, dir: &Path) {
    fn resolve(table: &mut DeTable<'static>, keys: &[&str], dir: &Path) {
        for key in keys {
            if let Some(value) = table.get_mut(*key) {
                if let DeValue::String(s) = value.get_mut() {
                    let p = Path::new(s.as_ref());
                    if p.is_relative() {
                        *s = std::borrow::Cow::Owned(dir.join(p).to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    fn each_table<'a>(
        table: &'a mut DeTable<'static>,
        key: &str,
    ) -> impl Iterator<Item = &'a mut DeTable<'static>> {
        let inner = match table.get_mut(key).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
        inner.into_iter().flat_map(|t| {
            t.iter_mut().filter_map(|(_, v)| match v.get_mut() {
                DeValue::Table(t) => Some(t),
                _ => None,
            })
        })
    }
    fn sub_table<'a>(
        table: &'a mut DeTable<'static>,
        key: &str,
    ) -> Option<&'a mut DeTable<'static>> {
        match table.get_mut(key).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        }
    }

    // `templates.NAME.path` on a variant (and its evaluator or fuser).
    fn resolve_variant(variant: &mut DeTable<'static>, dir: &Path) {
        resolve(variant, &VARIANT_PATH_KEYS, dir);
        for template in each_table(variant, "templates") {
            resolve(template, &["path"], dir);
        }
        if let Some(wrappers) = sub_table(variant, "input_wrappers") {
            resolve(wrappers, &["system", "user", "assistant"], dir);
        }
    }
    // An evaluator's `typescript_file`, and its judge variants' files.
    fn resolve_evaluators(owner: &mut DeTable<'static>, dir: &Path) {
        for evaluator in each_table(owner, "evaluators") {
            resolve(evaluator, &["typescript_file"], dir);
            for variant in each_table(evaluator, "variants") {
                resolve_variant(variant, dir);
                for nested in ["evaluator", "fuser"] {
                    if let Some(t) = sub_table(variant, nested) {
                        resolve_variant(t, dir);
                    }
                }
            }
        }
    }
    for evaluation in each_table(root, "evaluations") {
        resolve_evaluators(evaluation, dir);
    }
    for function in each_table(root, "functions") {
        resolve(function, &FUNCTION_PATH_KEYS, dir);
        resolve_evaluators(function, dir);
        for schema in each_table(function, "schemas") {
            resolve(schema, &["path"], dir);
        }
        for variant in each_table(function, "variants") {
            resolve_variant(variant, dir);
            for nested in ["evaluator", "fuser"] {
                if let Some(t) = sub_table(variant, nested) {
                    resolve_variant(t, dir);
                }
            }
        }
    }
    for tool in each_table(root, "tools") {
        resolve(tool, &["parameters"], dir);
    }
    if let Some(tfa) =
        sub_table(root, "gateway").and_then(|g| sub_table(g, "template_filesystem_access"))
    {
        resolve(tfa, &["base_path"], dir);
    }
}

/// Merges every file into one table. A table may be spread over several files, but any other
/// value may be set in only one of them.
fn merge(sources: &Sources) -> Result<DeTable<'static>, ConfigErrors> {
    let mut merged = DeTable::default();
    let mut errors = Vec::new();
    for file in &sources.files {
        merge_into(
            &mut merged,
            file.root.clone(),
            &TomlPath::default(),
            &mut errors,
        );
    }
    if errors.is_empty() {
        Ok(merged)
    } else {
        Err(ConfigErrors(
            errors
                .into_iter()
                .map(|path| {
                    let mut places = sources.files.iter().filter_map(|f| {
                        deepest(&f.root, &path.0)
                            .filter(|(d, _)| *d == path.0.len())
                            .map(|(_, off)| location_of(f, off).to_string())
                    });
                    let first = places.next().unwrap_or_default();
                    let second = places.next().unwrap_or_default();
                    ConfigError {
                        message: format!(
                            "set in more than one file ({first} and {second}); each key may be set in only one file"
                        ),
                        location: None,
                        path: Some(path),
                    }
                })
                .collect(),
        ))
    }
}

fn merge_into(
    into: &mut DeTable<'static>,
    from: DeTable<'static>,
    at: &TomlPath,
    conflicts: &mut Vec<TomlPath>,
) {
    for (key, value) in from {
        let name = key.get_ref().to_string();
        match into.get_mut(name.as_str()) {
            None => {
                into.insert(key, value);
            }
            Some(existing) => match (existing.get_mut(), value.into_inner()) {
                (DeValue::Table(a), DeValue::Table(b)) => {
                    merge_into(a, b, &at.key(&name), conflicts)
                }
                _ => conflicts.push(at.key(&name)),
            },
        }
    }
}

/// Deserializes the merged files into `T`, pointing any error at its file and line.
pub fn deserialize<T: DeserializeOwned>(sources: &Sources) -> Result<T, ConfigErrors> {
    let merged = merge(sources)?;
    let deserializer = toml::de::Deserializer::from(Spanned::new(0..0, merged));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = TomlPath::from(err.path());
        let message = err.into_inner().message().to_owned();
        let (path, message) = match merge(sources) {
            Ok(tree) => super::refine::refine(&tree, path, message),
            Err(_) => (path, message),
        };
        ConfigErrors(vec![locate_serde_error(sources, path, message)])
    })
}

/// serde reports an unknown key at the table that holds it (or above, inside tagged enums);
/// find the key itself so the line points at the typo.
fn locate_serde_error(sources: &Sources, path: TomlPath, message: String) -> ConfigError {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    if let Some(key) = unknown {
        if path.0.last() == Some(&PathSegment::Key(key.clone())) {
            return sources.error_at(path, message);
        }
        if let Some((full, location)) = sources.find_key_under(&path, &key) {
            return ConfigError {
                message,
                path: Some(full),
                location: Some(location),
            };
        }
    }
    sources.error_at(path, message)
}
