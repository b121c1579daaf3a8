//! The `syshost` binary; everything lives in the library (`syshost::cli`).

/// mimalloc instead of glibc malloc: the store (sled 0.34) allocates and
/// frees a tree node per write, and malloc/free were about half of a bulk
/// import's CPU time. Plugins keep their own allocator: abi_stable types
/// free memory through the library that allocated it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    syshost::cli::main()
}
