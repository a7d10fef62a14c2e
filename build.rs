//! Link libgcc's unwinder statically on glibc targets (what `gcc -static-libgcc` does), so
//! the binary no longer needs libgcc_s.so.1: one shared library fewer for ld.so to map and
//! relocate at every launch, and no libgcc_s constructor (`__cpu_indicator_init`, a run of
//! CPUID instructions that each trap to the hypervisor in a VM). clawjail builds with
//! panic = "abort", so the unwinder only serves backtraces. Measured with
//! scripts/bench-launch.sh: docs/performance.md.
//!
//! `-bundle`: the archive is not copied into the rlib but passed to the final link as this
//! crate's native library, which rustc places before the standard library's `-lgcc_s`
//! (dependents first); the linker then resolves the `_Unwind_*` references from it, and
//! `--as-needed` drops libgcc_s.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    // A crt-static glibc build links libgcc_eh itself; musl has its own unwinder.
    if os == "linux" && env == "gnu" && !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
