//! The documentation stays true to the tree: docs/architecture.md's module map names every file
//! under src/ and crates/*/src/ and nothing else, every relative link of the README, the chart's README and docs/
//! leads to a file and heading that exist, and the README's `cargo run` has a binary to run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The paths in the first code block after "## Module map".
fn module_map() -> BTreeSet<String> {
    let text = read("docs/architecture.md");
    let section = text
        .split("## Module map")
        .nth(1)
        .expect("docs/architecture.md has a \"## Module map\" section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the module map is a code block");
    block
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|path| path.starts_with("src/") || path.starts_with("crates/"))
        .map(str::to_string)
        .collect()
}

fn rust_files(dir: &Path, out: &mut BTreeSet<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path: PathBuf = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(repo()).expect("under the repository");
            out.insert(relative.display().to_string());
        }
    }
}

#[test]
fn the_module_map_names_exactly_the_files_under_src() {
    let mapped = module_map();
    let mut present = BTreeSet::new();
    rust_files(&repo().join("src"), &mut present);
    // Every member under crates/, so that a new crate cannot be left out of the map.
    let members = std::fs::read_dir(repo().join("crates")).expect("read crates/");
    for member in members {
        let member = member.expect("crates/ entry").path();
        rust_files(&member.join("src"), &mut present);
    }
    let missing: Vec<_> = present.difference(&mapped).collect();
    let stale: Vec<_> = mapped.difference(&present).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md's module map is out of date.\n\
         files under src/ and crates/*/src/ it does not list: {missing:?}\n\
         files it lists that do not exist: {stale:?}"
    );
}

/// The documents a reader follows links through.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![
        repo().join("README.md"),
        repo().join("charts/certboot/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// The relative link targets of a Markdown text (`[label](target)`, outside code blocks).
fn links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for rest in line.split("](").skip(1) {
            let target = rest.split(')').next().unwrap_or_default();
            if !target.contains("://") && !target.is_empty() && !target.contains(' ') {
                out.push(target.to_owned());
            }
        }
    }
    out
}

/// Every relative link of the README, the chart's README and docs/ leads to a file that exists,
/// and every `#anchor` to a heading there (the reference moved out of the README into docs/).
#[test]
fn every_link_in_the_docs_leads_somewhere() {
    let mut broken = Vec::new();
    let mut count = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("read");
        let dir = file.parent().expect("a directory");
        for link in links(&text) {
            count += 1;
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let shown = file
                .strip_prefix(repo())
                .unwrap_or(&file)
                .display()
                .to_string();
            if !target.exists() {
                broken.push(format!("{shown}: {link} (no such file)"));
                continue;
            }
            if let Some(fragment) =
                fragment.filter(|_| target.extension().is_some_and(|x| x == "md"))
            {
                let there = std::fs::read_to_string(&target).expect("read");
                if !anchors(&there).contains(fragment) {
                    broken.push(format!("{shown}: {link} (no such heading)"));
                }
            }
        }
    }
    assert!(count > 50, "links found: {count}");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The README's "Try it" runs `cargo run -- --dry-run`: with two binaries in the crate that works
/// only when the package names certboot as the one `cargo run` runs (it failed with "could not
/// determine which binary to run" once certboot-controller was added).
#[test]
fn the_readmes_cargo_run_has_a_default_binary() {
    let readme = read("README.md");
    assert!(
        readme.contains("cargo run -- --dry-run"),
        "the README's Try it"
    );
    let manifest = read("Cargo.toml");
    let package = manifest
        .split("\n[package]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("Cargo.toml has a [package] section (the root package, certboot)");
    assert!(
        package
            .lines()
            .any(|l| l.replace(' ', "") == "default-run=\"certboot\""),
        "Cargo.toml's [package] sets default-run = \"certboot\""
    );
}
