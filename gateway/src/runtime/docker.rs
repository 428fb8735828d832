//! Docker runtime (placeholder: being written).
