//! The `tandem` executable: read the configuration, start logging, serve.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use clap::Parser;
    use tracing_subscriber::EnvFilter;

    let config = tandem::server::config::Config::parse();
    // The admin commands print their answer on standard output: their logs go to standard
    // error, and only warnings unless asked.
    let admin = config.command.as_ref().is_some_and(|c| c.prints_result());
    let default_level = if admin { "warn" } else { "info" };
    let logs = tracing_subscriber::fmt().with_env_filter(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
    );
    if admin {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    } else {
        // Colours only for a person at a terminal, never in log files.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    match tandem::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build is a library; the server binary needs `--features ssr`.
}
