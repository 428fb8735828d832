//! Host bindings of the `orca:identity@0.1.0` package, generated from `wit/identity.wit`.
//!
//! One `bindgen!` over the `resolver` world (every export); a component exporting a subset is
//! bound interface by interface through the generated `GuestIndices`.

// The generated export wrappers use `unsafe` internally (typed functions checked at load).
#![allow(unsafe_code)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "orca:identity/resolver",
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
});
