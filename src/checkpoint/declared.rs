//! `[checkpoints] safe-globals`: the globals a team allows beyond torch's weights-only allowlist
//! (torch's `add_safe_globals`). plumbline never calls a global, declared or not; a declared one's
//! objects are described by the arguments and state the pickle gives them. But torch *would* call
//! it, so a declaration that is a known route to running code, touching files or the network, or
//! loading another pickle is refused when the config loads: declaring one would let a checkpoint
//! through that runs code the moment anyone loads it with torch.
//!
//! The list is built from the globals malicious pickles use (tests/fixtures/malicious, picklescan's
//! and modelscan's lists): whole module trees, and single names from otherwise ordinary modules.

/// Module trees refused whole (`os` refuses `os.system` and `os.path.join`).
const MODULES: &[&str] = &[
    "__builtin__",
    "__builtins__",
    "_ctypes",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "_imp",
    "_io",
    "_operator",
    "_pickle",
    "_posixsubprocess",
    "_thread",
    "_winapi",
    "aiohttp",
    "asyncio",
    "bdb",
    "cProfile",
    "cloudpickle",
    "code",
    "codeop",
    "commands",
    "copyreg",
    "ctypes",
    "dill",
    "doctest",
    "ftplib",
    "gc",
    "http",
    "httpx",
    "importlib",
    "io",
    "joblib",
    "linecache",
    "logging.config",
    "marshal",
    "multiprocessing",
    "numpy.ctypeslib",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "numpy.lib.npyio",
    "nt",
    "operator",
    "os",
    "pandas.io.pickle",
    "pathlib",
    "pdb",
    "pickle",
    "pkgutil",
    "platform",
    "posix",
    "profile",
    "pydoc",
    "pty",
    "requests",
    "runpy",
    "shelve",
    "shutil",
    "smtplib",
    "socket",
    "subprocess",
    "sys",
    "telnetlib",
    "tempfile",
    "threading",
    "timeit",
    "torch._C",
    "torch._dynamo",
    "torch._inductor",
    "torch._ops",
    "torch.fx",
    "torch.hub",
    "torch.jit",
    "torch.ops",
    "torch.package",
    "torch.serialization",
    "torch.utils.collect_env",
    "torch.utils.cpp_extension",
    "types",
    "urllib",
    "webbrowser",
    "zipimport",
];

/// Single globals refused (`module.Name`).
const NAMES: &[&str] = &[
    "builtins.__import__",
    "builtins.breakpoint",
    "builtins.compile",
    "builtins.delattr",
    "builtins.eval",
    "builtins.exec",
    "builtins.execfile",
    "builtins.exit",
    "builtins.getattr",
    "builtins.globals",
    "builtins.help",
    "builtins.input",
    "builtins.locals",
    "builtins.open",
    "builtins.quit",
    "builtins.setattr",
    "builtins.vars",
    "numpy.fromfile",
    "numpy.load",
    "numpy.loadtxt",
    "numpy.memmap",
    "numpy.testing._private.utils.runstring",
    "pandas.read_pickle",
    "torch.load",
    "torch.storage._load_from_bytes",
    "uuid._get_command_stdout",
];

/// Why `declared` (`module.Name`) may not be declared safe, if it may not.
pub fn check(declared: &str) -> Result<(), String> {
    let Some((module, name)) = declared.rsplit_once('.') else {
        return Err("write it as `module.Name` (the module path, a dot, then the name)".into());
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    if !ident(module) || !ident(name) {
        return Err("write it as `module.Name` (Python identifiers separated by dots)".into());
    }
    if NAMES.contains(&declared) {
        return Err(
            "a known route to running code or loading files; plumbline refuses to declare it safe"
                .into(),
        );
    }
    if let Some(m) = MODULES
        .iter()
        .find(|m| module == **m || module.starts_with(&format!("{m}.")))
    {
        return Err(format!(
            "`{m}` is a module pickles use to run code, reach files or the network, or load another pickle; plumbline refuses to declare anything in it safe"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn code_execution_routes_are_refused() {
        for g in [
            "builtins.eval",
            "os.system",
            "posix.system",
            "subprocess.Popen",
            "runpy._run_code",
            "os.path.join",
            "torch.load",
            "torch.serialization.load",
            "operator.attrgetter",
            "importlib.import_module",
        ] {
            assert!(check(g).is_err(), "{g}");
        }
        for g in [
            "functools.partial",
            "omegaconf.dictconfig.DictConfig",
            "numpy.core.multiarray.scalar",
            "numpy.dtype",
            "builtins.slice",
            "mylib.hparams.HParams",
        ] {
            assert_eq!(check(g), Ok(()), "{g}");
        }
        assert!(check("eval").is_err());
        assert!(check("os.").is_err());
        assert!(check("my lib.X").is_err());
    }
}
