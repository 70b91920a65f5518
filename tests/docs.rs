//! The documentation stays true to the tree: docs/architecture.md's module map names every file
//! under src/ and nothing else, the README's links into docs/ lead to files that exist, and its
//! `cargo run` has a binary to run.

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
        .filter(|path| path.starts_with("src/"))
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
    let missing: Vec<_> = present.difference(&mapped).collect();
    let stale: Vec<_> = mapped.difference(&present).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md's module map is out of date.\n\
         files under src/ it does not list: {missing:?}\n\
         files it lists that do not exist: {stale:?}"
    );
}

#[test]
fn the_readme_links_only_to_docs_that_exist() {
    let readme = read("README.md");
    let links: Vec<&str> = readme
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| target.starts_with("docs/"))
        .collect();
    assert!(!links.is_empty(), "the README links into docs/");
    for link in links {
        let file = link.split('#').next().unwrap_or(link);
        assert!(
            repo().join(file).is_file(),
            "README links to {link}, which does not exist"
        );
    }
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
        .split("\n[")
        .next()
        .expect("Cargo.toml starts with [package]");
    assert!(
        package
            .lines()
            .any(|l| l.replace(' ', "") == "default-run=\"certboot\""),
        "Cargo.toml's [package] sets default-run = \"certboot\""
    );
}
