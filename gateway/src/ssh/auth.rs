//! SSH credentials as the resolvers see them (the WIT `ssh-attempt`).

use std::net::SocketAddr;

use russh::keys::HashAlg;

use super::login::Login;
use crate::identity::{Client, Credential, PublicKey, SshAttempt};

/// A client's public key as the `ssh` interface describes it: the algorithm's wire name, the
/// wire encoding, the OpenSSH `SHA256:` fingerprint and the `authorized_keys` form without a
/// comment, so a resolver can match keys whichever way its store holds them.
pub fn public_key(key: &russh::keys::PublicKey) -> PublicKey {
    // Encoding a key that was decoded from the wire does not fail; were it to, the empty
    // strings would match no stored key, which denies rather than admits.
    let mut bare = key.clone();
    bare.set_comment("");
    PublicKey {
        algorithm: key.algorithm().as_str().to_string(),
        blob: key.to_bytes().unwrap_or_default(),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        openssh: bare.to_openssh().unwrap_or_default(),
    }
}

/// The question for the resolvers about `login` proving itself with `credential` from `peer`.
pub fn attempt(login: &Login, credential: Credential, peer: SocketAddr) -> SshAttempt {
    SshAttempt {
        user: login.user.clone(),
        image: login.image.clone(),
        credential,
        client: Client {
            address: peer.ip().to_string(),
            port: peer.port(),
        },
    }
}
