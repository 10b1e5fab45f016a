//! The gateway's parts that outlive a request: configuration, store, keys, directory, vault,
//! token sealer. Commands that need no plugins (`link`, `vault`, `audit`) open just this.

use std::sync::Arc;

use crate::config::Config;
use crate::directory::{DEMO, Directory, DirectoryError};
use crate::keys::{KeyError, Keys};
use crate::store::{Store, StoreError};
use crate::token::TokenSealer;
use crate::vault::Vault;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("data directory {0}: {1}")]
    DataDir(String, String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

pub struct App {
    pub config: Config,
    pub store: Store,
    pub keys: Keys,
    pub directory: Arc<Directory>,
    pub vault: Arc<Vault>,
    pub sealer: TokenSealer,
}

impl App {
    pub async fn open(config: Config) -> Result<Self, AppError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| AppError::DataDir(config.data_dir.display().to_string(), e.to_string()))?;
        let keys = Keys::load_or_create(&config.data_dir)?;
        let store = Store::open(&config.store_url()).await?;
        let directory = if config.directory.file.is_empty() {
            tracing::info!("using the embedded demo directory (set directory.file for your own)");
            Directory::parse(DEMO)?
        } else {
            Directory::load(std::path::Path::new(&config.directory.file))?
        };
        let vault = Arc::new(Vault::new(store.clone(), keys.vault.clone()));
        let sealer = TokenSealer::new(&keys.token, &config.cluster_id);
        Ok(Self {
            config,
            store,
            keys,
            directory: Arc::new(directory),
            vault,
            sealer,
        })
    }
}
