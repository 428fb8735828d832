//! The Rust SDK for Orca identity resolvers.
//!
//! A resolver is a WASI preview-2 component implementing the `orca:identity@0.1.0` WIT package
//! (`wit/identity.wit` in the Orca repository; read its comments for the contract). With this
//! crate a resolver is a type, a trait implementation per question it answers, and one macro:
//!
//! ```ignore
//! use orca_sdk::{Http, HttpRequest, Identity, Resolver, Settings, Verdict};
//!
//! struct Header { name: String }
//!
//! impl Resolver for Header {
//!     fn init(settings: Settings) -> Result<Self, String> {
//!         settings.only(&["header"])?;
//!         Ok(Header { name: settings.get_or("header", "x-user").to_string() })
//!     }
//! }
//!
//! impl Http for Header {
//!     fn resolve(&self, request: HttpRequest) -> Verdict {
//!         match request.header(&self.name) {
//!             Some(user) => Verdict::allow(Identity::new(user)),
//!             None => Verdict::Pass,
//!         }
//!     }
//! }
//!
//! orca_sdk::export!(Header: http);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` from a `cdylib` crate; the
//! `.wasm` in `target/wasm32-wasip2/release/` is the component to name in Orca's `[[resolver]]`.
//!
//! One value of the type is made by `init` on every new instance and answers that instance's
//! calls; the gateway may reuse an instance for several calls or make a fresh one per call, so
//! keep state that must be shared in [`store`].
#![deny(missing_docs)]

mod settings;
mod verdict;

pub mod files;
pub mod log;
pub mod store;

pub use settings::Settings;

/// The WIT records and variants, as `wit-bindgen` generates them.
pub use bindings::orca::identity::types::{
    Client, Credential, Denial, Grant, HttpRequest, Identity, Issued, PublicKey, SshAttempt,
    Verdict,
};

/// Makes the type a component exporting `lifecycle` and the named interfaces:
/// `orca_sdk::export!(MyResolver: http, session);` (any of `http`, `ssh`, `password`,
/// `session`; `session` needs `http`). Use it once per crate.
pub use orca_sdk_macros::export;

/// Set-up of a resolver: every resolver implements it.
pub trait Resolver: Sized + 'static {
    /// Builds the resolver from the operator's settings (the `config` table of its
    /// `[[resolver]]`). An error should name the setting, the bad value and what would be
    /// accepted: the gateway shows it to the operator and refuses to start with it.
    fn init(settings: Settings) -> Result<Self, String>;
}

/// Answers HTTPS requests (`export!(T: http)`).
pub trait Http: Resolver {
    /// Allow, deny or pass a request.
    fn resolve(&self, request: HttpRequest) -> Verdict;
}

/// Answers SSH authentication attempts (`export!(T: ssh)`).
pub trait Ssh: Resolver {
    /// Allow, deny or pass an attempt; public keys arrive already verified by the gateway.
    fn resolve(&self, attempt: SshAttempt) -> Verdict;
}

/// Checks passwords (`export!(T: password)`).
pub trait Password: Resolver {
    /// `allow` for the right password, `deny` for a wrong one, `pass` for an unknown user.
    fn check(&self, user: String, password: String, client: Client) -> Verdict;
}

/// Issues session cookies that the same resolver's [`Http::resolve`] recognises later
/// (`export!(T: http, session)`).
pub trait Session: Http {
    /// A cookie value for an identity that just logged in.
    fn issue(&self, who: Identity) -> Result<Issued, String>;
    /// The user logged out with `request`: never recognise the session it carries again.
    /// Returns the names of the cookies the gateway clears in the browser.
    fn revoke(&self, request: HttpRequest) -> Vec<String>;
}

/// Bindings generated for the host imports and the shared types.
#[doc(hidden)]
#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        inline: "
            package orca:sdk;
            world imports {
                import orca:identity/types@0.1.0;
                import orca:identity/log@0.1.0;
                import orca:identity/store@0.1.0;
            }
        ",
        world: "orca:sdk/imports",
        generate_unused_types: true,
        generate_all,
    });
}

/// What `export!` expands to calls; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::any::Any;
    use std::cell::RefCell;
    use std::rc::Rc;

    pub use crate::bindings;
    pub use wit_bindgen;

    use crate::{
        Client, Http, HttpRequest, Identity, Issued, Password, Resolver, Session, Settings, Ssh,
        SshAttempt, Verdict,
    };

    thread_local! {
        /// The value `init` made for this instance.
        static INSTANCE: RefCell<Option<Rc<dyn Any>>> = const { RefCell::new(None) };
    }

    pub fn init<T: Resolver>(settings: Vec<(String, String)>) -> Result<(), String> {
        let value = T::init(Settings::new(settings))?;
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Rc::new(value)));
        Ok(())
    }

    fn with<T: Resolver, R>(f: impl FnOnce(&T) -> R) -> Result<R, String> {
        let instance = INSTANCE.with(|slot| slot.borrow().clone());
        match instance.as_deref().and_then(|any| any.downcast_ref::<T>()) {
            Some(value) => Ok(f(value)),
            None => Err("the resolver was called before `init` succeeded".to_string()),
        }
    }

    fn verdict<T: Resolver>(f: impl FnOnce(&T) -> Verdict) -> Verdict {
        with(f).unwrap_or_else(Verdict::deny)
    }

    pub fn http<T: Http>(request: HttpRequest) -> Verdict {
        verdict::<T>(|t| t.resolve(request))
    }

    pub fn ssh<T: Ssh>(attempt: SshAttempt) -> Verdict {
        verdict::<T>(|t| t.resolve(attempt))
    }

    pub fn password<T: Password>(user: String, password: String, client: Client) -> Verdict {
        verdict::<T>(|t| t.check(user, password, client))
    }

    pub fn issue<T: Session>(who: Identity) -> Result<Issued, String> {
        with::<T, _>(|t| t.issue(who))?
    }

    pub fn revoke<T: Session>(request: HttpRequest) -> Vec<String> {
        with::<T, _>(|t| t.revoke(request)).unwrap_or_else(|e| {
            crate::log::error(&e);
            Vec::new()
        })
    }
}
