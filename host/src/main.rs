//! The `syshost` binary; everything lives in the library (`syshost::cli`).

fn main() -> std::process::ExitCode {
    syshost::cli::main()
}
