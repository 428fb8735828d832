//! The `export!` macro of `orca-sdk`; use it through `orca_sdk::export!`.
//!
//! Why a procedural macro: a component must embed the WIT world it implements, and a resolver
//! implements a subset of the interfaces. The world therefore differs per plugin, and
//! `wit_bindgen::generate!` only takes it as a literal. This macro writes that literal (the
//! package text, embedded here at build time, plus a world with the chosen exports) and the glue
//! from the generated traits to the SDK's traits.

use proc_macro::{Delimiter, Spacing, TokenStream, TokenTree};

/// The `orca:identity` package, one file, embedded so a plugin needs no WIT files of its own.
const PACKAGE: &str = include_str!("../../../wit/identity.wit");

/// The interfaces a resolver may choose, with the glue that forwards the generated trait to the
/// SDK's trait of the same role.
const INTERFACES: &[(&str, &str)] = &[
    (
        "http",
        "impl exports::orca::identity::http::Guest for Export {
            fn resolve(request: ::orca_sdk::HttpRequest) -> ::orca_sdk::Verdict {
                ::orca_sdk::__private::http::<Plugin>(request)
            }
        }",
    ),
    (
        "ssh",
        "impl exports::orca::identity::ssh::Guest for Export {
            fn resolve(attempt: ::orca_sdk::SshAttempt) -> ::orca_sdk::Verdict {
                ::orca_sdk::__private::ssh::<Plugin>(attempt)
            }
        }",
    ),
    (
        "password",
        "impl exports::orca::identity::password::Guest for Export {
            fn check(user: String, password: String, client: ::orca_sdk::Client)
                -> ::orca_sdk::Verdict {
                ::orca_sdk::__private::password::<Plugin>(user, password, client)
            }
        }",
    ),
    (
        "session",
        "impl exports::orca::identity::session::Guest for Export {
            fn issue(who: ::orca_sdk::Identity) -> Result<::orca_sdk::Issued, String> {
                ::orca_sdk::__private::issue::<Plugin>(who)
            }
            fn revoke(request: ::orca_sdk::HttpRequest) -> Vec<String> {
                ::orca_sdk::__private::revoke::<Plugin>(request)
            }
        }",
    ),
];

/// Exports a resolver: `orca_sdk::export!(MyResolver: http, session);`.
///
/// The type implements `orca_sdk::Resolver` and the SDK trait of every interface named
/// (`Http`, `Ssh`, `Password`, `Session`); `lifecycle` is always exported. Use it once per
/// crate, at the crate root or in any module.
#[proc_macro]
pub fn export(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(code) => code
            .parse()
            .unwrap_or_else(|e| error(&format!("orca_sdk::export!: {e}"))),
        Err(message) => error(&message),
    }
}

fn expand(input: TokenStream) -> Result<String, String> {
    let (ty, names) = split(input)?;
    let mut chosen: Vec<&(&str, &str)> = Vec::new();
    for name in &names {
        let Some(entry) = INTERFACES.iter().find(|(n, _)| n == name) else {
            return Err(format!(
                "orca_sdk::export!: `{name}` is not an interface of orca:identity; choose from \
                 http, ssh, password, session"
            ));
        };
        if chosen.iter().any(|(n, _)| n == name) {
            return Err(format!("orca_sdk::export!: `{name}` is named twice"));
        }
        chosen.push(entry);
    }
    if chosen.is_empty() {
        return Err("orca_sdk::export!: name at least one interface, as in \
                    `export!(MyResolver: http)`"
            .to_string());
    }
    if names.iter().any(|n| n == "session") && !names.iter().any(|n| n == "http") {
        return Err(
            "orca_sdk::export!: a `session` resolver must also export `http`: it is \
                    the one that recognises the cookies it issues"
                .to_string(),
        );
    }
    let exports: String = chosen
        .iter()
        .map(|(n, _)| format!("export {n};\n"))
        .collect();
    let world = format!(
        "{PACKAGE}\n/// The exports of this plugin, chosen by `orca_sdk::export!`.\n\
         world orca-sdk-plugin {{\n include base;\n {exports}}}\n"
    );
    let glue: String = chosen
        .iter()
        .map(|(_, g)| *g)
        .collect::<Vec<_>>()
        .join("\n");
    // Native builds (a plugin's unit tests) get no exports; naming the trait methods keeps the
    // same trait checks and counts the resolver as used.
    let uses: String = chosen
        .iter()
        .map(|(n, _)| match *n {
            "http" => format!("let _ = <{ty} as ::orca_sdk::Http>::resolve;"),
            "ssh" => format!("let _ = <{ty} as ::orca_sdk::Ssh>::resolve;"),
            "password" => format!("let _ = <{ty} as ::orca_sdk::Password>::check;"),
            _ => format!(
                "let _ = <{ty} as ::orca_sdk::Session>::issue; \
                 let _ = <{ty} as ::orca_sdk::Session>::revoke;"
            ),
        })
        .collect();
    Ok(format!(
        r#"
#[cfg(not(target_family = "wasm"))]
const _: () = {{
    let _ = <{ty} as ::orca_sdk::Resolver>::init;
    {uses}
}};

// Only for WebAssembly: the export names (`orca:identity/http@0.1.0#resolve`) are not symbols
// a native linker accepts, and native builds of a plugin exist only for its unit tests.
#[cfg(target_family = "wasm")]
#[doc(hidden)]
#[allow(unsafe_code, unreachable_pub, missing_docs, missing_debug_implementations)]
mod __orca_sdk_export {{
    #[allow(unused_imports)]
    use super::*;
    type Plugin = {ty};
    ::orca_sdk::__private::wit_bindgen::generate!({{
        inline: {world:?},
        world: "orca-sdk-plugin",
        runtime_path: "::orca_sdk::__private::wit_bindgen::rt",
        with: {{
            "orca:identity/types@0.1.0": ::orca_sdk::__private::bindings::orca::identity::types,
            "orca:identity/log@0.1.0": ::orca_sdk::__private::bindings::orca::identity::log,
            "orca:identity/store@0.1.0": ::orca_sdk::__private::bindings::orca::identity::store,
        }},
    }});
    struct Export;
    impl exports::orca::identity::lifecycle::Guest for Export {{
        fn init(settings: ::std::vec::Vec<(String, String)>) -> Result<(), String> {{
            ::orca_sdk::__private::init::<Plugin>(settings)
        }}
    }}
    {glue}
    export!(Export);
}}
"#
    ))
}

/// Splits `Path: a, b, c` at the lone `:` (a `::` inside the path is not a separator).
fn split(input: TokenStream) -> Result<(String, Vec<String>), String> {
    let tokens: Vec<TokenTree> = input.into_iter().collect();
    let mut at = None;
    for (i, t) in tokens.iter().enumerate() {
        if let TokenTree::Punct(p) = t {
            let joint_before = matches!(
                i.checked_sub(1).and_then(|j| tokens.get(j)),
                Some(TokenTree::Punct(q)) if q.as_char() == ':' && q.spacing() == Spacing::Joint
            );
            if p.as_char() == ':' && p.spacing() == Spacing::Alone && !joint_before {
                at = Some(i);
                break;
            }
        }
    }
    let Some(at) = at else {
        return Err("orca_sdk::export!: write `export!(MyResolver: http, session)`".to_string());
    };
    let ty: String = tokens
        .get(..at)
        .unwrap_or_default()
        .iter()
        .map(|t| t.to_string())
        .collect();
    if ty.is_empty() {
        return Err("orca_sdk::export!: the resolver type is missing before `:`".to_string());
    }
    let mut names = Vec::new();
    for t in tokens.get(at + 1..).unwrap_or_default() {
        match t {
            TokenTree::Ident(id) => names.push(id.to_string()),
            TokenTree::Punct(p) if p.as_char() == ',' => {}
            TokenTree::Group(g) if g.delimiter() == Delimiter::None => {
                names.push(g.stream().to_string())
            }
            other => {
                return Err(format!(
                    "orca_sdk::export!: unexpected `{other}`; list interfaces separated by commas"
                ));
            }
        }
    }
    Ok((ty, names))
}

fn error(message: &str) -> TokenStream {
    format!("::core::compile_error!({message:?});")
        .parse()
        .unwrap_or_default()
}
