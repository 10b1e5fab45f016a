//! `openpsm`: the gateway's command line.

mod admin_cli;
mod admin_mfa;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use openpsm_gateway::app::App;
use openpsm_gateway::config::Config;
use openpsm_gateway::plugins::{Registry, Status};
use openpsm_gateway::workflow::Engine;
use openpsm_gateway::{logging, web};

/// Exit code for a configuration or plugin that is refused.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "openpsm",
    version,
    about = "openpsm privileged session management gateway"
)]
struct Cli {
    /// Configuration file (default: ./config/gateway.toml if present, else built-in defaults).
    #[arg(long, global = true, env = "OPENPSM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway's HTTP server.
    Serve,
    /// Validate the configuration, build every enabled plugin, print the effective configuration
    /// with secrets redacted.
    CheckConfig,
    /// Inspect plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Print a signed start link (as the IAM portal would send a person).
    Link(admin_cli::LinkArgs),
    /// Manage the embedded vault's credentials and master passwords.
    Vault {
        #[command(subcommand)]
        command: admin_cli::VaultCommand,
    },
    /// List or end live sessions.
    Sessions {
        #[command(subcommand)]
        command: admin_cli::SessionsCommand,
    },
    /// MFA enrolments and locks.
    Mfa {
        #[command(subcommand)]
        command: admin_mfa::MfaCommand,
    },
    /// Inspect the audit log.
    Audit {
        #[command(subcommand)]
        command: admin_cli::AuditCommand,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Every known plugin: id, kind, version, plugin-api version, origin, enabled, status.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return refuse(&e),
    };
    logging::init(&config.log);
    // Panics inside the gateway's own tasks become log lines like everything else (the guard
    // turns a plugin's panic into an error for that call; this records where it happened).
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "panic: {}", panic_text(info.payload()));
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::CheckConfig => check_config(config).await,
            Command::Plugins {
                command: PluginsCommand::List { json },
            } => list_plugins(config, json).await,
            Command::Link(args) => {
                with_app(config, |app| Box::pin(admin_cli::link(app, args))).await
            }
            Command::Vault { command } => {
                with_app(config, |app| Box::pin(admin_cli::vault(app, command))).await
            }
            Command::Sessions { command } => {
                with_app(config, |app| Box::pin(admin_cli::sessions(app, command))).await
            }
            Command::Mfa { command } => {
                let registry = match Registry::load(&config).await {
                    Ok(registry) => registry,
                    Err(e) => return refuse(&e),
                };
                with_app(config, |app| {
                    Box::pin(async move { admin_mfa::mfa(app, &registry, command).await })
                })
                .await
            }
            Command::Audit { command } => {
                with_app(config, |app| Box::pin(admin_cli::audit(app, command))).await
            }
        }
    });
    // A plugin call that never returned still holds a blocking thread; dropping the runtime
    // would wait for it forever.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-text panic payload"
    }
}

/// Opens the store, keys, directory and vault, runs `body`, closes the store.
async fn with_app(
    config: Config,
    body: impl for<'a> FnOnce(
        &'a App,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = ExitCode> + 'a>>,
) -> ExitCode {
    match App::open(config).await {
        Ok(app) => {
            let code = body(&app).await;
            app.store.close().await;
            code
        }
        Err(e) => refuse(&e),
    }
}

fn refuse(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EXIT_CONFIG)
}

async fn serve(config: Config) -> ExitCode {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    metrics::gauge!("openpsm_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let registry = match Registry::load(&config).await {
        Ok(registry) => Arc::new(registry),
        Err(e) => return refuse(&e),
    };
    for record in registry.records() {
        tracing::info!(plugin = %record.id, origin = %record.origin, status = ?record.status, "plugin");
    }
    let app = match App::open(config.clone()).await {
        Ok(app) => Arc::new(app),
        Err(e) => return refuse(&e),
    };
    let engine = Arc::new(Engine::new(app, registry.clone()));
    if let Err(e) = engine.check_source() {
        return refuse(&e);
    }
    // Before serving: the sessions of the last run are over.
    match openpsm_gateway::session::recover(&engine).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            sessions = n,
            "ended the sessions this node was running when it stopped"
        ),
        Err(e) => tracing::error!("finishing the sessions of the last run failed: {e}"),
    }
    // Just-in-time accounts a crash left behind (their flows are over or lost) go now.
    match engine.sweep_jit().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(accounts = n, "removed just-in-time accounts left behind"),
        Err(e) => tracing::error!("sweeping just-in-time accounts failed: {e}"),
    }
    let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.server.listen);
    // The one line on stdout: scripts and tests read the address from it.
    println!("openpsm listening on http://{addr}");
    tracing::info!(%addr, "listening");
    let live = Arc::new(openpsm_gateway::session::live::Live::default());
    // Administrators end sessions through the store (`openpsm sessions terminate`), from any node.
    let (watcher, watched) = (engine.clone(), live.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            if let Ok(ids) = watcher.app.store.termination_requests().await {
                for id in ids.iter().filter_map(|i| i.parse::<uuid::Uuid>().ok()) {
                    watched.stop(&id, openpsm_gateway::session::live::TERMINATED);
                }
            }
        }
    });
    let sweeper = engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(e) = sweeper.sweep().await {
                tracing::warn!("sweeping expired flows failed: {e}");
            }
        }
    });
    // Ends at the credential source that failed (or that a crashed run left) are retried here.
    let retrier = engine.clone();
    let every = Duration::from_secs(config.credentials.end_retry_secs);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = retrier.retry_pending_ends().await {
                tracing::warn!("retrying ends at the credential source failed: {e}");
            }
        }
    });
    let web_dir = web::assets::web_dir(&config.web.dir);
    let state = web::AppState {
        registry,
        metrics,
        engine: Some(engine),
        web_dir,
        live,
    };
    match web::serve(
        listener,
        state,
        Duration::from_secs(config.server.shutdown_grace_secs),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check_config(config: Config) -> ExitCode {
    if let Err(e) = Registry::load(&config).await {
        return refuse(&e);
    }
    match config.to_redacted_toml() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    }
}

async fn list_plugins(config: Config, json: bool) -> ExitCode {
    let (registry, failures) = Registry::inspect(&config).await;
    let records = registry.records();
    if json {
        match serde_json::to_string_pretty(records) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        println!(
            "{:<20} {:<20} {:<9} {:<5} {:<7} {:<40} STATUS",
            "ID", "KIND", "VERSION", "API", "ENABLED", "ORIGIN"
        );
        for r in records {
            let dash = || "-".to_owned();
            let status = match &r.status {
                Status::Active => "active".to_owned(),
                Status::Disabled => "disabled".to_owned(),
                Status::Failed(reason) => format!("failed: {reason}"),
            };
            println!(
                "{:<20} {:<20} {:<9} {:<5} {:<7} {:<40} {}",
                r.id,
                r.kind.map(|k| k.to_string()).unwrap_or_else(dash),
                r.version.clone().unwrap_or_else(dash),
                r.api_version.clone().unwrap_or_else(dash),
                if r.enabled { "yes" } else { "no" },
                r.origin.to_string(),
                status
            );
        }
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}
