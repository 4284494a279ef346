//! The browser app's toolchain and tasks: installing trunk, wasm-bindgen-cli, wasm-opt
//! (npm binaryen) and Chromium when missing, generating the demo data, serving and building.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::demo;
use crate::test::{cmd, output, workspace_root};

const TRUNK_VERSION: &str = "0.21.14";
/// Must equal the `wasm-bindgen` pin in Cargo.toml and `[tools]` in Trunk.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// The demo dataset the app ships (see `demo.rs`).
pub const DEMO_PATH: &str = "public/demo.jsonl.gz";

/// `cargo xtask serve`: installs what is missing, then serves the app on 127.0.0.1:8080.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    if let Some(other) = args.first() {
        bail!("unknown option `{other}` for `cargo xtask serve`");
    }
    ensure_app_tools()?;
    ensure_demo()?;
    // The build copies the embedding model beside the app (index.html).
    crate::model::fetch()?;
    println!("serving tracesift on http://127.0.0.1:8080 (Ctrl-C to stop)");
    let status = trunk_command(&["serve", "--release"])
        .status()
        .context("cannot start trunk")?;
    if !status.success() {
        bail!("trunk serve failed with {status}");
    }
    Ok(())
}

/// Builds the release app into `dist/` and returns the sizes of its two wasm modules.
pub fn build_release() -> anyhow::Result<Vec<(String, u64)>> {
    ensure_app_tools()?;
    ensure_demo()?;
    // The build copies the embedding model beside the app (index.html).
    crate::model::fetch()?;
    let status = trunk_command(&["build", "--release"])
        .status()
        .context("cannot start trunk")?;
    if !status.success() {
        bail!("trunk build failed with {status}");
    }
    let mut sizes = Vec::new();
    for entry in
        std::fs::read_dir(workspace_root().join("dist")).context("no dist/ after the build")?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".wasm") {
            sizes.push((name, entry.metadata()?.len()));
        }
    }
    sizes.sort();
    Ok(sizes)
}

fn trunk_command(args: &[&str]) -> Command {
    let mut command = Command::new(cargo_bin("trunk"));
    command
        .args(args)
        .current_dir(workspace_root())
        .env("TRUNK_OFFLINE", "true")
        .env("PATH", path_with_tools());
    command
}

/// PATH with cargo's bin folder and the npm tools (wasm-opt) first.
pub fn path_with_tools() -> String {
    let node_bin = workspace_root().join("node_modules/.bin");
    let cargo_bin_dir = cargo_home().join("bin");
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{}:{rest}", node_bin.display(), cargo_bin_dir.display())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
}

fn cargo_bin(name: &str) -> PathBuf {
    cargo_home().join("bin").join(name)
}

/// Installs, where missing, everything the app's build needs.
pub fn ensure_app_tools() -> anyhow::Result<()> {
    crate::test::ensure_wasm_target()?;
    ensure_cargo_tool("trunk", TRUNK_VERSION, &["--locked"])?;
    // wasm-bindgen-cli's lock file names a crate version the registry lacks: no --locked.
    ensure_cargo_tool("wasm-bindgen", WASM_BINDGEN_VERSION, &[])?;
    ensure_npm_tools()
}

fn ensure_cargo_tool(binary: &str, version: &str, extra: &[&str]) -> anyhow::Result<()> {
    let found = output(&cargo_bin(binary).to_string_lossy(), &["--version"]).unwrap_or_default();
    if found.contains(version) {
        println!("{binary} {version} is installed");
        return Ok(());
    }
    let package = if binary == "wasm-bindgen" {
        "wasm-bindgen-cli"
    } else {
        binary
    };
    let mut args = vec!["install", package, "--version", version];
    args.extend_from_slice(extra);
    cmd("cargo", &args)
}

/// npm packages of package.json (binaryen's wasm-opt, playwright-core, axe-core for the
/// accessibility check); Playwright never downloads a browser: the tests drive Debian's
/// Chromium.
pub fn ensure_npm_tools() -> anyhow::Result<()> {
    let root = workspace_root();
    if root.join("node_modules/.bin/wasm-opt").exists()
        && root.join("node_modules/playwright-core").exists()
        && root.join("node_modules/axe-core/axe.min.js").exists()
    {
        println!("npm tools are installed");
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&root)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .context("cannot start npm (install Node.js)")?;
    if !status.success() {
        bail!("npm ci failed with {status}");
    }
    Ok(())
}

/// Debian's Chromium and ChromeDriver, for the browser tests.
pub fn ensure_chromium() -> anyhow::Result<()> {
    if std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
    {
        println!("chromium and chromedriver are installed");
        return Ok(());
    }
    apt_install(&["chromium", "chromium-driver"])
}

/// Installs Debian packages (as root, or through sudo).
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let sudo = if output("id", &["-u"]).unwrap_or_default().trim() == "0" {
        vec![]
    } else {
        vec!["sudo"]
    };
    let run_apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut all: Vec<&str> = sudo.clone();
        all.push("apt-get");
        all.extend_from_slice(args);
        let (program, rest) = all.split_first().context("empty command")?;
        let status = Command::new(program)
            .args(rest)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot start apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed with {status}", args.join(" "));
        }
        Ok(())
    };
    run_apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    run_apt(&install)
}

/// The demo dataset, generated (deterministically) if it is missing or was made by an
/// older generator (its gzip comment is not the current stamp).
pub fn ensure_demo() -> anyhow::Result<()> {
    let path = workspace_root().join(DEMO_PATH);
    if demo::is_current(&path) {
        return Ok(());
    }
    write_demo()
}

/// `cargo xtask demo`: writes the demo dataset afresh and says what is in it.
pub fn write_demo() -> anyhow::Result<()> {
    let path = workspace_root().join(DEMO_PATH);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let stats = demo::write_demo(&demo::DEMO_OPTIONS, &path)?;
    let compressed = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let answered = stats.traces - stats.unanswered;
    println!(
        "generated the demo data: {} questions ({} labelled), {} traces of {}-{} tokens (mean {:.0}), \
         {} unanswered, {:.1} % of answers correct; {:.1} MB, {:.2} MB gzipped -> {}",
        stats.questions,
        stats.labelled_questions,
        stats.traces,
        stats.min_tokens,
        stats.max_tokens,
        stats.total_tokens as f64 / stats.traces.max(1) as f64,
        stats.unanswered,
        100.0 * stats.correct as f64 / answered.max(1) as f64,
        stats.bytes as f64 / 1e6,
        compressed as f64 / 1e6,
        path.display()
    );
    Ok(())
}

/// `cargo xtask precache`, run by Trunk after every build (a `post_build` hook in
/// Trunk.toml): writes `precache.js` into the build, naming each of its files (the hashed
/// wasm and JS names come from this build) and a hash of their contents, for the service
/// worker (public/service-worker.js) to cache as one snapshot.
pub fn precache(args: &[String]) -> anyhow::Result<()> {
    if let Some(other) = args.first() {
        bail!("unknown option `{other}` for `cargo xtask precache`");
    }
    let staging = std::env::var_os("TRUNK_STAGING_DIR")
        .map(PathBuf::from)
        .context("`cargo xtask precache` runs as a Trunk hook: TRUNK_STAGING_DIR is not set")?;
    let mut files = Vec::new();
    list_files(&staging, &staging, &mut files)?;
    files.retain(|name| name != SERVICE_WORKER && name != PRECACHE_LIST);
    files.sort();
    // The embedding model (90 MB) is cached when `semantic` first asks for it, not with
    // every visit; its files are pinned by sha256, so one copy serves every build.
    let (on_demand, files): (Vec<String>, Vec<String>) = files
        .into_iter()
        .partition(|name| name.starts_with(MODEL_FOLDER));
    let mut build_hash = Fnv64::default();
    for name in &files {
        build_hash.write(name.as_bytes());
        build_hash.write(&[0]);
        let bytes = std::fs::read(staging.join(name))
            .with_context(|| format!("cannot read {name} in the build"))?;
        build_hash.write(&bytes);
    }
    let list = |names: &[String]| -> String {
        names
            .iter()
            .map(|name| serde_json::Value::from(name.as_str()).to_string())
            .collect::<Vec<_>>()
            .join(",\n  ")
    };
    let script = format!(
        "// Written by `cargo xtask precache` after the Trunk build: this build's files, for service-worker.js.\n\
         self.TRACESIFT_BUILD = \"{:016x}\";\n\
         self.TRACESIFT_FILES = [\n  {},\n];\n\
         // Cached on first use, kept across builds (pinned by sha256).\n\
         self.TRACESIFT_ON_DEMAND = [\n  {},\n];\n",
        build_hash.0,
        list(&files),
        list(&on_demand)
    );
    std::fs::write(staging.join(PRECACHE_LIST), script)
        .with_context(|| format!("cannot write {PRECACHE_LIST}"))?;
    println!(
        "precache.js: {} files of build {:016x}",
        files.len(),
        build_hash.0
    );
    Ok(())
}

/// Where the build puts the embedding model's files (the app's `embedding::MODEL_FOLDER`).
const MODEL_FOLDER: &str = "all-MiniLM-L6-v2/";

/// The service worker and the list of files it caches, in the build's root.
const SERVICE_WORKER: &str = "service-worker.js";
const PRECACHE_LIST: &str = "precache.js";

/// Paths under `root`, relative and with `/` separators.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// FNV-1a, 64 bits: enough to tell builds apart, and the same everywhere.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Chromium flags for tests: headless, as root, and quiet on a machine with no network.
pub const CHROMIUM_ARGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The app crate's `wasm_bindgen_test`s, in headless Chromium through chromedriver;
/// returns (passed, failed).
pub fn wasm_bindgen_tests() -> anyhow::Result<(u64, u64)> {
    let root = workspace_root();
    // wasm-bindgen-test-runner reads the browser's capabilities from ./webdriver.json.
    let capabilities = serde_json_like_capabilities();
    std::fs::write(root.join("webdriver.json"), capabilities)
        .context("cannot write webdriver.json")?;
    let mut command = Command::new("cargo");
    command
        .args([
            "test",
            "-p",
            "tracesift-web",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .current_dir(&root)
        .env("PATH", path_with_tools())
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            cargo_bin("wasm-bindgen-test-runner"),
        )
        .env("CHROMEDRIVER", "/usr/bin/chromedriver")
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120");
    let tally = crate::test::run_counting_tests(command)?;
    Ok((tally.passed, tally.failed))
}

fn serde_json_like_capabilities() -> String {
    let args: Vec<String> = CHROMIUM_ARGS
        .iter()
        .map(|arg| format!("\"{arg}\""))
        .collect();
    format!(
        "{{\"goog:chromeOptions\": {{\"binary\": \"/usr/bin/chromium\", \"args\": [{}]}}}}\n",
        args.join(", ")
    )
}

/// The Playwright tests in tests/e2e (node's test runner, Debian's Chromium), against the
/// release build in dist/ and the release CLI; returns (passed, failed).
pub fn end_to_end_tests() -> anyhow::Result<(u64, u64)> {
    cmd("cargo", &["build", "--release", "--bin", "tracesift"])?;
    let root = workspace_root();
    let screenshots = root.join("target/screenshots");
    std::fs::create_dir_all(&screenshots)?;
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=tap", "tests/e2e/"])
        .current_dir(&root)
        .env("TRACESIFT_DIST", root.join("dist"))
        .env("TRACESIFT_CLI", root.join("target/release/tracesift"))
        .env("TRACESIFT_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", "/usr/bin/chromium");
    let tally = crate::test::run_counting_tests(command)?;
    println!("screenshots of the main views: {}", screenshots.display());
    Ok((tally.passed, tally.failed))
}

/// Mesa's software Vulkan driver (lavapipe), on which the GPU kernels are tested.
pub fn ensure_vulkan() -> anyhow::Result<()> {
    if std::path::Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json").exists() {
        println!("mesa-vulkan-drivers (lavapipe) is installed");
        return Ok(());
    }
    apt_install(&["mesa-vulkan-drivers", "libvulkan1"])
}
