//! The Dockerfile, checked without a Docker engine (this CI has none): it builds with exactly the
//! command of `scripts/build-static.sh` (whose binary `tests/e2e_static.rs` proves in an empty
//! root), builds dependencies before copying the sources, and ships a `FROM scratch` image with
//! only the binary, running as 65532:65532.

use std::path::Path;

/// The build command, exactly as in scripts/build-static.sh and the Dockerfile.
const BUILD_COMMAND: &str = r#"RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target""#;

#[test]
fn the_dockerfile_builds_what_the_script_builds_into_a_nonroot_scratch_image() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| {
        std::fs::read_to_string(repo.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    };
    let dockerfile = read("Dockerfile");
    let script = read("scripts/build-static.sh");
    // Each program built alone (-p), so certboot links none of the controller's features.
    let builds = [
        format!("{BUILD_COMMAND} -p certboot "),
        format!("{BUILD_COMMAND} -p certboot-controller "),
    ];
    for build in &builds {
        assert!(
            script.contains(build.as_str()),
            "scripts/build-static.sh: {build}"
        );
    }
    assert_eq!(
        dockerfile.matches(BUILD_COMMAND).count(),
        4,
        "the Dockerfile's dependency and final builds use the script's command, once per program"
    );
    for build in [
        format!("{BUILD_COMMAND} --locked -p certboot "),
        format!("{BUILD_COMMAND} --locked -p certboot-controller "),
    ] {
        assert_eq!(
            dockerfile.matches(build.as_str()).count(),
            2,
            "Dockerfile: {build}"
        );
    }
    assert!(
        script.contains("target=\"${TARGET:-x86_64-unknown-linux-gnu}\""),
        "the script defaults to x86_64-unknown-linux-gnu"
    );
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(
        froms[0].starts_with("FROM rust:1.") && froms[0].contains("-bookworm AS builder"),
        "pinned builder: {}",
        froms[0]
    );
    assert!(
        froms[0]
            .split(':')
            .nth(1)
            .unwrap()
            .split('-')
            .next()
            .unwrap()
            .matches('.')
            .count()
            == 2,
        "the builder's tag pins a patch version: {}",
        froms[0]
    );
    assert_eq!(*froms[1], "FROM scratch");
    let final_stage: Vec<&&str> = instructions
        .iter()
        .skip_while(|l| **l != "FROM scratch")
        .collect();
    let copies: Vec<&&&str> = final_stage
        .iter()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(copies.len(), 2, "only the two binaries: {copies:?}");
    assert_eq!(**copies[0], "COPY --from=builder /certboot /certboot");
    assert_eq!(
        **copies[1],
        "COPY --from=builder /certboot-controller /certboot-controller"
    );
    assert!(final_stage.contains(&&"USER 65532:65532"));
    assert!(final_stage.contains(&&"ENTRYPOINT [\"/certboot\"]"));
    assert!(
        !final_stage.iter().any(|l| l.starts_with("RUN")),
        "no RUN in scratch (no shell)"
    );
    assert!(dockerfile.contains("ARG CERTBOOT_GIT_REVISION"));
    assert!(dockerfile.contains("org.opencontainers.image.revision"));
    // Dependencies are built before the sources are copied in (a cached layer).
    let deps = dockerfile
        .find("COPY Cargo.toml Cargo.lock ./")
        .expect("manifest copied first");
    let sources = dockerfile.find("COPY src ./src").expect("sources copied");
    assert!(deps < sources);
    assert!(dockerfile[deps..sources].contains("cargo build"));
    // Every workspace member's manifest goes into the dependency layer, its sources into the next.
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find(|l| l.starts_with("members = "))
        .expect("workspace members");
    for member in members.split('"').filter(|m| m.starts_with("crates/")) {
        assert!(
            dockerfile[deps..sources].contains(&format!("COPY {member}/Cargo.toml")),
            "{member}'s manifest copied before the sources"
        );
        assert!(
            dockerfile[sources..].contains(&format!("COPY {member}/src ./{member}/src")),
            "{member}'s sources copied"
        );
    }
    let ignore = read(".dockerignore");
    for needed in [
        "!Cargo.toml",
        "!Cargo.lock",
        "!src/",
        "!crates/*/Cargo.toml",
        "!crates/*/build.rs",
        "!crates/*/src/",
    ] {
        assert!(
            ignore.lines().any(|l| l == needed),
            ".dockerignore: {needed}"
        );
    }
}

/// The test node's certboot image (scripts/node-images.sh) is the Dockerfile's final stage, line
/// for line, except that its two `COPY --from=builder` take the prebuilt static binaries from the
/// build context (no Docker engine here, and buildah would otherwise rebuild the builder stage).
#[test]
fn the_node_image_is_the_dockerfiles_final_stage_with_prebuilt_binaries() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(repo.join("Dockerfile")).expect("read Dockerfile");
    let output = std::process::Command::new("bash")
        .arg(repo.join("scripts/node-images.sh"))
        .arg("containerfile")
        .output()
        .expect("run scripts/node-images.sh containerfile");
    assert!(output.status.success(), "{output:?}");
    let derived = String::from_utf8(output.stdout).expect("UTF-8");

    let lines: Vec<&str> = dockerfile.lines().collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    let final_stage = &lines[last_from..];
    let derived: Vec<&str> = derived.lines().collect();
    assert_eq!(derived.len(), final_stage.len(), "{derived:#?}");
    let mut replaced = Vec::new();
    for (original, node) in final_stage.iter().zip(&derived) {
        if original == node {
            continue;
        }
        let binary = original
            .strip_prefix("COPY --from=builder /")
            .and_then(|rest| rest.split_once(' '))
            .map(|(source, _)| source)
            .unwrap_or_else(|| panic!("only COPY --from=builder lines may differ: {original}"));
        assert_eq!(
            *node,
            original.replace("COPY --from=builder /", "COPY "),
            "the binary comes from the build context"
        );
        replaced.push(binary);
    }
    assert_eq!(replaced, ["certboot", "certboot-controller"]);
    assert_eq!(final_stage[0], "FROM scratch");
}
