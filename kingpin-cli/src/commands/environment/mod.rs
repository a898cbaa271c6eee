//! `kingpin env`: a service's environments (a tree of JSON configs whose
//! views inherit their parents' values), host associations, pins, history,
//! export/import and the migration from Jones.

mod contents;
mod hosts;
mod transfer;

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use kingpin::kingpin_api::environment::{EnvPath, Environments, HostId, ServiceName};
use kingpin::kingpin_api::Error;

use super::Context;
use crate::cli::ContentArgs;

/// Environment commands. ENV is a path in the service's tree: `/` (the
/// root), `prod`, `prod/us-east` (a leading `/` is optional).
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the services that have environments.
    Services,
    /// Create an environment (ENV `/` creates the service). Its parent must
    /// exist. Content from --file or --value (default `{}`).
    Create {
        /// Service name.
        service: String,
        /// The new environment.
        env: String,
        /// Read the content from FILE (`-` for stdin).
        #[arg(short, long, value_name = "FILE", conflicts_with = "value")]
        file: Option<PathBuf>,
        /// Use JSON as the content.
        #[arg(long, value_name = "JSON")]
        value: Option<String>,
        /// Why (recorded with the version).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Delete an environment (`/`: the whole service). Refused while it
    /// has children or associated hosts, unless --force, which deletes the
    /// children and unassociates the hosts, and lists them.
    Delete {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// Delete children and unassociate hosts too.
        #[arg(long)]
        force: bool,
    },
    /// Replace an environment's own content (a JSON object) from --file,
    /// --value or stdin; every view below it is rebuilt in the same commit.
    Set {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        #[command(flatten)]
        content: ContentArgs,
        /// Compare-and-set: write only if the environment is at version V;
        /// exit code 4 otherwise.
        #[arg(long, value_name = "V")]
        if_version: Option<u64>,
        /// Why (recorded with the version).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Print an environment's own content (`--json`: with its record).
    Show {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// An older version.
        #[arg(long, value_name = "V")]
        version: Option<u64>,
    },
    /// Print an environment's view: what its hosts read. --sources adds
    /// where each value comes from; --json always has both, and the
    /// environment versions merged.
    View {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// List each value's place, value and the environment that set it.
        #[arg(long)]
        sources: bool,
    },
    /// Print the service's environments as a tree, with versions and host
    /// counts.
    Tree {
        /// Service name.
        service: String,
    },
    /// Associate a host (default: this host's identity) with ENV.
    Associate {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// The host (default: $KINGPIN_HOST, else this host's FQDN).
        #[arg(long)]
        host: Option<String>,
    },
    /// Remove a host's association: it reads the root view again.
    Unassociate {
        /// Service name.
        service: String,
        /// The host (default: $KINGPIN_HOST, else this host's FQDN).
        #[arg(long)]
        host: Option<String>,
    },
    /// List associations: host, environment, pinned version.
    Hosts {
        /// Service name.
        service: String,
        /// Only the hosts of this environment.
        #[arg(long)]
        env: Option<String>,
    },
    /// Pin a host to version V of its environment's view until unpinned.
    Pin {
        /// Service name.
        service: String,
        /// The view version.
        version: u64,
        /// The host (default: $KINGPIN_HOST, else this host's FQDN).
        #[arg(long)]
        host: Option<String>,
    },
    /// Let a pinned host follow its environment's view again.
    Unpin {
        /// Service name.
        service: String,
        /// The host (default: $KINGPIN_HOST, else this host's FQDN).
        #[arg(long)]
        host: Option<String>,
    },
    /// List an environment's versions, newest first.
    History {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// Only the newest N.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Unified diff of an environment's own content between two versions.
    Diff {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// The old version (default: the one before --to).
        #[arg(long, value_name = "V1")]
        from: Option<u64>,
        /// The new version (default: the current one).
        #[arg(long, value_name = "V2")]
        to: Option<u64>,
    },
    /// Write version V's content as a new version (and rebuild the views).
    Rollback {
        /// Service name.
        service: String,
        /// The environment.
        env: String,
        /// The version to restore.
        #[arg(long, value_name = "V")]
        to: u64,
        /// Why (recorded with the version).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Write the service (tree, contents, associations) as one JSON
    /// document.
    Export {
        /// Service name.
        service: String,
    },
    /// Recreate a service from an exported document (--file, --value or
    /// stdin). The whole document is checked before anything is written.
    Import {
        #[command(flatten)]
        content: ContentArgs,
    },
    /// Move a service from Jones's ZooKeeper layout (/services/SERVICE/conf,
    /// views, nodemaps) in one command. Where kingpin's deep merge would
    /// give a host another view than Jones did, the imported content gets
    /// the nulls (or patch) that keep Jones's views, and each place is
    /// listed; --keep-contents copies contents as they are instead.
    ImportJones {
        /// Service name.
        service: String,
        /// Jones's ZooKeeper: zk://HOST:PORT[/chroot].
        #[arg(long, value_name = "URL")]
        from: String,
        /// Copy contents unchanged (views may differ from Jones's).
        #[arg(long)]
        keep_contents: bool,
        /// Show what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a `kingpin env` command.
pub async fn run(command: EnvCommand, ctx: &Context) -> Result<()> {
    match command {
        EnvCommand::Services => contents::services(ctx).await,
        EnvCommand::Create {
            service,
            env,
            file,
            value,
            message,
        } => {
            let (service, env) = (service_name(&service)?, env_path(&env)?);
            let content = contents::initial_content(file.as_deref(), value.as_deref())?;
            contents::create(ctx, &service, &env, content, message).await
        }
        EnvCommand::Delete {
            service,
            env,
            force,
        } => contents::delete(ctx, &service_name(&service)?, &env_path(&env)?, force).await,
        EnvCommand::Set {
            service,
            env,
            content,
            if_version,
            message,
        } => {
            let (service, env) = (service_name(&service)?, env_path(&env)?);
            let content = contents::content_from(&content)?;
            contents::set(ctx, &service, &env, content, if_version, message).await
        }
        EnvCommand::Show {
            service,
            env,
            version,
        } => contents::show(ctx, &service_name(&service)?, &env_path(&env)?, version).await,
        EnvCommand::View {
            service,
            env,
            sources,
        } => contents::view(ctx, &service_name(&service)?, &env_path(&env)?, sources).await,
        EnvCommand::Tree { service } => contents::tree(ctx, &service_name(&service)?).await,
        EnvCommand::Associate { service, env, host } => {
            let (service, env, host) = (
                service_name(&service)?,
                env_path(&env)?,
                host_id(host.as_deref())?,
            );
            hosts::associate(ctx, &service, &env, &host).await
        }
        EnvCommand::Unassociate { service, host } => {
            hosts::unassociate(ctx, &service_name(&service)?, &host_id(host.as_deref())?).await
        }
        EnvCommand::Hosts { service, env } => {
            let env = env.as_deref().map(env_path).transpose()?;
            hosts::list(ctx, &service_name(&service)?, env.as_ref()).await
        }
        EnvCommand::Pin {
            service,
            version,
            host,
        } => {
            hosts::pin(
                ctx,
                &service_name(&service)?,
                &host_id(host.as_deref())?,
                version,
            )
            .await
        }
        EnvCommand::Unpin { service, host } => {
            hosts::unpin(ctx, &service_name(&service)?, &host_id(host.as_deref())?).await
        }
        EnvCommand::History {
            service,
            env,
            limit,
        } => {
            let name = service_name(&service)?.content_config(&env_path(&env)?)?;
            super::config::history(ctx, &name, limit).await
        }
        EnvCommand::Diff {
            service,
            env,
            from,
            to,
        } => {
            let name = service_name(&service)?.content_config(&env_path(&env)?)?;
            super::config::diff(ctx, &name, from, to).await
        }
        EnvCommand::Rollback {
            service,
            env,
            to,
            message,
        } => contents::rollback(ctx, &service_name(&service)?, &env_path(&env)?, to, message).await,
        EnvCommand::Export { service } => transfer::export(ctx, &service_name(&service)?).await,
        EnvCommand::Import { content } => transfer::import(ctx, &content).await,
        EnvCommand::ImportJones {
            service,
            from,
            keep_contents,
            dry_run,
        } => {
            transfer::import_jones(ctx, &service_name(&service)?, &from, keep_contents, dry_run)
                .await
        }
    }
}

fn service_name(name: &str) -> Result<ServiceName, Error> {
    ServiceName::parse(name)
}

fn env_path(path: &str) -> Result<EnvPath, Error> {
    EnvPath::parse(path)
}

/// The host named, else this host by the one identity rule.
fn host_id(host: Option<&str>) -> Result<HostId, Error> {
    kingpin::kingpin_api::environment::local_host_id(host)
}

async fn environments(ctx: &Context) -> Result<Environments> {
    Ok(Environments::new(ctx.store().await?))
}
