//! `cargo xtask record`: re-creates the real provider output under tests/data/real/ and the
//! scores expected of it. Run by hand, not in CI: it installs Python packages from PyPI into
//! target/record/venv, builds llama.cpp's server from the llama-cpp-python sdist (about 15
//! minutes on 2 cores, once), runs the recorders in scripts/record/, then
//! scripts/record/expected.py.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask record [--only PROVIDER,…] [--jobs N]

Re-creates tests/data/real/<provider>/ and every *.expected.json beside the files.
  --only P,…  only these providers: openai, llamacpp-server, llama-cpp-python, vllm,
              sglang, tgi, ollama (expected scores are recomputed for every file)
  --jobs N    parallel compile jobs for llama.cpp (default 2; the build runs under nice)
Everything it installs or builds stays in target/record/ and is reused by the next run.";

/// The versions the files were recorded with: pinned so a re-recording changes only what
/// the providers changed.
const LLAMA_CPP_PYTHON: &str = "0.3.36";
const VLLM: &str = "0.33.0";
const SGLANG: &str = "0.5.23";
const PYTHON_PACKAGES: &[&str] = &[
    "openai==3.57.0",
    "pydantic==2.14.4",
    "gguf==0.19.0",
    "numpy==2.4.6",
    "orjson==3.13.0",
    "text-generation==0.7.0",
    "ollama==0.6.3",
    "cmake==4.4.5",
    "ninja==1.13.2",
    "scikit-build-core==1.1.2",
    // llama-cpp-python's own dependencies (its Python package is used from the sdist).
    "typing-extensions",
    "diskcache",
    "jinja2",
];

const PROVIDERS: &[&str] = &[
    "openai",
    "llamacpp-server",
    "llama-cpp-python",
    "vllm",
    "sglang",
    "tgi",
    "ollama",
];

struct Paths {
    root: PathBuf,
    work: PathBuf,
    python: PathBuf,
    scripts: PathBuf,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut only: Option<Vec<String>> = None;
    let mut jobs = 2_u32;
    let mut args_iter = args.iter();
    while let Some(arg) = args_iter.next() {
        match arg.as_str() {
            "--only" => {
                let list = args_iter
                    .next()
                    .context("--only needs a list of providers")?;
                let names: Vec<String> = list.split(',').map(str::to_owned).collect();
                if let Some(unknown) = names.iter().find(|n| !PROVIDERS.contains(&n.as_str())) {
                    bail!(
                        "unknown provider `{unknown}`; known: {}",
                        PROVIDERS.join(", ")
                    );
                }
                only = Some(names);
            }
            "--jobs" => {
                jobs = args_iter
                    .next()
                    .context("--jobs needs a number")?
                    .parse()
                    .context("--jobs needs a number")?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    let wanted = |provider: &str| {
        only.as_ref()
            .is_none_or(|names| names.iter().any(|n| n == provider))
    };

    let root = crate::test::workspace_root();
    let work = root.join("target").join("record");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let paths = Paths {
        python: work.join("venv").join("bin").join("python"),
        scripts: root.join("scripts").join("record"),
        root,
        work,
    };
    install_python(&paths)?;
    // A provider's folder is written afresh, so a file no longer recorded does not linger.
    let real = paths.root.join("tests").join("data").join("real");
    for provider in PROVIDERS.iter().filter(|provider| wanted(provider)) {
        let folder = real.join(provider);
        if folder.exists() {
            fs::remove_dir_all(&folder)
                .with_context(|| format!("cannot clear {}", folder.display()))?;
        }
    }

    if wanted("openai") {
        script(&paths, "openai_sdk.py", &[])?;
    }
    if wanted("llamacpp-server") || wanted("llama-cpp-python") {
        let llama = build_llama_cpp(&paths, jobs)?;
        let model = paths.work.join("tiny.gguf");
        script(&paths, "make_model.py", &[model.as_os_str()])?;
        if wanted("llamacpp-server") {
            let server = llama.build.join("bin").join("llama-server");
            script(
                &paths,
                "llamacpp_server.py",
                &[
                    server.as_os_str(),
                    model.as_os_str(),
                    llama.vendored.as_os_str(),
                    LLAMA_CPP_PYTHON.as_ref(),
                ],
            )?;
        }
        if wanted("llama-cpp-python") {
            let status = Command::new(&paths.python)
                .arg(paths.scripts.join("llama_cpp_python.py"))
                .arg(&llama.sdist)
                .arg(&model)
                .env("LLAMA_CPP_LIB_PATH", llama.build.join("bin"))
                .current_dir(&paths.scripts)
                .status()
                .context("cannot run llama_cpp_python.py")?;
            if !status.success() {
                bail!("llama_cpp_python.py failed ({status})");
            }
        }
    }
    if wanted("vllm") {
        let wheel = download_wheel(&paths, "vllm", VLLM)?;
        script(&paths, "vllm_shapes.py", &[wheel.as_os_str()])?;
    }
    if wanted("sglang") {
        let wheel = download_wheel(&paths, "sglang", SGLANG)?;
        script(&paths, "sglang_shapes.py", &[wheel.as_os_str()])?;
    }
    if wanted("tgi") {
        script(&paths, "tgi_shapes.py", &[])?;
    }
    if wanted("ollama") {
        script(&paths, "ollama_shapes.py", &[])?;
    }
    script(&paths, "expected.py", &[])?;
    println!(
        "recorded into {}; run `cargo test -p tracesift-cli --test real` to score them",
        real.display()
    );
    Ok(())
}

/// A virtual environment under target/record with the pinned packages (PyPI only).
fn install_python(paths: &Paths) -> anyhow::Result<()> {
    if !paths.python.exists() {
        run_checked(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(paths.work.join("venv")),
        )?;
    }
    run_checked(
        Command::new(&paths.python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(PYTHON_PACKAGES),
    )
}

fn script(paths: &Paths, name: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    println!("== {name}");
    run_checked(
        Command::new(&paths.python)
            .arg(paths.scripts.join(name))
            .args(args)
            .current_dir(&paths.scripts),
    )
}

/// `pip download --no-deps` of one wheel (kept in target/record/wheels).
fn download_wheel(paths: &Paths, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let wheels = paths.work.join("wheels");
    if let Some(found) = find_file(&wheels, &format!("{name}-{version}-"), ".whl") {
        return Ok(found);
    }
    run_checked(
        Command::new(&paths.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
            ])
            .arg(&wheels)
            .arg(format!("{name}=={version}")),
    )?;
    find_file(&wheels, &format!("{name}-{version}-"), ".whl")
        .with_context(|| format!("pip downloaded no {name} {version} wheel"))
}

fn find_file(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
}

struct LlamaCpp {
    /// The unpacked llama-cpp-python sdist (its Python package is used in-process).
    sdist: PathBuf,
    /// The llama.cpp it vendors.
    vendored: PathBuf,
    build: PathBuf,
}

/// Downloads the llama-cpp-python sdist (PyPI) and builds `llama-server` from the llama.cpp
/// it vendors; its shared libraries serve llama-cpp-python too. Reused once built.
fn build_llama_cpp(paths: &Paths, jobs: u32) -> anyhow::Result<LlamaCpp> {
    let sdist = paths
        .work
        .join(format!("llama_cpp_python-{LLAMA_CPP_PYTHON}"));
    let vendored = sdist.join("vendor").join("llama.cpp");
    let build = vendored.join("build");
    let llama = LlamaCpp {
        sdist: sdist.clone(),
        vendored: vendored.clone(),
        build: build.clone(),
    };
    if build.join("bin").join("llama-server").exists() {
        return Ok(llama);
    }
    let downloads = paths.work.join("sdist");
    if find_file(&downloads, "llama_cpp_python-", ".tar.gz").is_none() {
        // Without build isolation pip reads the metadata with the scikit-build-core already
        // installed, instead of building cmake from source to do it.
        run_checked(
            Command::new(&paths.python)
                .args(["-m", "pip", "download", "--no-deps", "--no-build-isolation"])
                .args(["--no-binary", "llama-cpp-python", "-d"])
                .arg(&downloads)
                .arg(format!("llama-cpp-python=={LLAMA_CPP_PYTHON}")),
        )?;
    }
    let archive = find_file(&downloads, "llama_cpp_python-", ".tar.gz")
        .context("pip downloaded no llama-cpp-python sdist")?;
    if !vendored.exists() {
        run_checked(
            Command::new("tar")
                .arg("xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&paths.work),
        )?;
    }
    let venv_bin = paths.work.join("venv").join("bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    println!("== building llama-server (about 15 minutes on 2 cores)");
    run_checked(
        Command::new("nice")
            .args(["-n", "10", "cmake", "-B", "build", "-G", "Ninja"])
            .args([
                "-DLLAMA_CURL=OFF",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_NATIVE=OFF",
            ])
            .args(["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"])
            .current_dir(&vendored)
            .env("PATH", &path),
    )?;
    run_checked(
        Command::new("nice")
            .args([
                "-n",
                "10",
                "cmake",
                "--build",
                "build",
                "--target",
                "llama-server",
            ])
            .arg(format!("-j{jobs}"))
            .current_dir(&vendored)
            .env("PATH", &path),
    )?;
    Ok(llama)
}

fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}
