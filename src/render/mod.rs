//! Renderers turn a check's outcome into text. They know findings, not gates.

pub mod human;
pub mod json;
