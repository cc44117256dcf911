//! A job's credentials (`SetCredentials`): HTTP Basic user names and passwords for the server
//! and the proxy, never shown with their passwords.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// Which credentials a `SetCredentials` call concerns (`BG_AUTH_TARGET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialTarget {
    Server,
    Proxy,
}

/// User name and password for HTTP Basic authentication.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BasicCredentials {
    pub user_name: String,
    pub password: String,
}

impl BasicCredentials {
    pub fn new(user_name: impl Into<String>, password: impl Into<String>) -> Result<Self> {
        let (user_name, password) = (user_name.into(), password.into());
        if user_name.chars().count() > 300 {
            return Err(Error::TooLarge {
                code: ErrorCode::BG_E_USERNAME_TOO_LARGE,
                message: "user name longer than 300 characters".into(),
            });
        }
        if password.chars().count() > 65_535 {
            return Err(Error::TooLarge {
                code: ErrorCode::BG_E_PASSWORD_TOO_LARGE,
                message: "password longer than 65,535 characters".into(),
            });
        }
        if user_name.contains(':') {
            return Err(Error::InvalidArgument(
                "a Basic user name cannot contain ':'".into(),
            ));
        }
        Ok(Self {
            user_name,
            password,
        })
    }

    /// Parse `USER:PASSWORD`.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((user, password)) = text.split_once(':') else {
            return Err(Error::InvalidArgument(
                "credentials must be USER:PASSWORD".into(),
            ));
        };
        Self::new(user, password)
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The job's server and proxy credentials. Shown without passwords.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub server: Option<BasicCredentials>,
    pub proxy: Option<BasicCredentials>,
}

impl Credentials {
    /// What may be shown of the credentials: the user names, never the passwords.
    pub fn view(&self) -> CredentialsView {
        let user = |c: &Option<BasicCredentials>| c.as_ref().map(|c| c.user_name.clone());
        CredentialsView {
            server_user: user(&self.server),
            proxy_user: user(&self.proxy),
        }
    }
}

/// The credentials as reported: user names only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsView {
    pub server_user: Option<String>,
    pub proxy_user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_hide_the_password() {
        let c = BasicCredentials::parse("ann:s3cret").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let all = Credentials {
            server: Some(c),
            proxy: None,
        };
        let json = serde_json::to_string(&all.view()).unwrap();
        assert!(!json.contains("s3cret") && json.contains("ann"));
        assert!(BasicCredentials::parse("nocolon").is_err());
    }
}
