//! The platform's secret store: Secret Service on Linux and the BSDs (GNOME Keyring, KWallet,
//! KeePassXC), the Keychain on macOS, the Credential Manager on Windows. Calls block (D-Bus, a
//! possible unlock prompt): they run on a thread of their own under a deadline.

use std::sync::Arc;
use std::time::Duration;

use keyring_core::{CredentialStore, Entry};

const SERVICE: &str = "ebb";
/// A store that has not answered by then is taken as absent (first use) or locked.
const DEADLINE: Duration = Duration::from_secs(5);

fn account(fingerprint: &str) -> String {
    format!("queue key {fingerprint}")
}

fn store() -> keyring_core::Result<Arc<CredentialStore>> {
    #[cfg(all(unix, not(target_os = "macos")))]
    let store: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
    #[cfg(target_os = "macos")]
    let store: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()?;
    #[cfg(windows)]
    let store: Arc<CredentialStore> = windows_native_keyring_store::Store::new()?;
    Ok(store)
}

/// Run `f` on a thread of its own, waiting at most `DEADLINE`. Not on the runtime's blocking
/// pool: a call that never returns (an unlock prompt nobody answers) must not keep the runtime,
/// and so the process, from ending.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> keyring_core::Result<T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ebb-secret-store".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(DEADLINE, rx).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(_)) => Err("the secret store's thread ended".into()),
        Err(_) => Err(format!("no answer within {DEADLINE:?}")),
    }
}

/// Keep `key` in the platform's store under its fingerprint.
pub(super) async fn save(key: [u8; 32], fingerprint: &str) -> Result<(), String> {
    let account = account(fingerprint);
    blocking(move || Entry::new_in_store(&store()?, SERVICE, &account)?.set_secret(&key)).await
}

/// The key with this fingerprint, from the platform's store.
pub(super) async fn load(fingerprint: &str) -> Result<Vec<u8>, String> {
    let account = account(fingerprint);
    blocking(move || Entry::new_in_store(&store()?, SERVICE, &account)?.get_secret()).await
}
