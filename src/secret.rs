//! The redacting key holder, shared with the layers crate (which resolves keys).

pub use switchyard_layers::Secret;
