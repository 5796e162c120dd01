//! `hekate-cli`: heketi-cli's command line for Hekate (see `hekate::cli`).

fn main() {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start runtime: {e}");
            std::process::exit(255);
        }
    };
    let code = rt.block_on(hekate::cli::main());
    std::process::exit(code);
}
