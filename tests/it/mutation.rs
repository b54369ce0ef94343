//! Checkpoint bytes are untrusted: truncated or bit-flipped files give an error or a value, never a panic.

use std::io::Cursor;

use proptest::prelude::*;

fn production_bytes() -> Vec<u8> {
    std::fs::read(crate::util::production_pt()).unwrap()
}

fn safetensors_bytes() -> Vec<u8> {
    std::fs::read(crate::util::example().join("checkpoints/momentum_v3.safetensors")).unwrap()
}

fn pickle_bytes() -> Vec<u8> {
    crate::util::data_pkl(&crate::util::production_pt()).1
}

fn mutate(mut bytes: Vec<u8>, truncate: Option<usize>, flips: &[(usize, u8)]) -> Vec<u8> {
    for &(pos, bit) in flips {
        let i = pos % bytes.len();
        bytes[i] ^= 1 << (bit % 8);
    }
    if let Some(t) = truncate {
        bytes.truncate(t % (bytes.len() + 1));
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn torch_reader_never_panics(truncate in proptest::option::of(any::<usize>()), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let bytes = mutate(production_bytes(), truncate, &flips);
        let _ = plumbline::checkpoint::torch::read(Cursor::new(bytes), plumbline::checkpoint::pickle::Rules::ZIP);
    }

    #[test]
    fn pickle_machine_never_panics(truncate in proptest::option::of(any::<usize>()), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let bytes = mutate(pickle_bytes(), truncate, &flips);
        let _ = plumbline::checkpoint::pickle::read(&bytes, "data.pkl");
    }

    /// Flips inside `data.pkl` would be caught by the zip CRC; re-wrapping the mutated pickle in a fresh
    /// archive makes the tree conversion and the storage checks see them.
    #[test]
    fn mutated_pickle_in_a_valid_archive_never_panics(truncate in proptest::option::of(any::<usize>()), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let pkl = mutate(pickle_bytes(), truncate, &flips);
        let bytes = crate::util::zip_bytes(&[crate::util::Entry::Bytes("archive/data.pkl", &pkl), crate::util::Entry::Hole("archive/data/0", 0)]);
        let _ = plumbline::checkpoint::torch::read(Cursor::new(bytes), plumbline::checkpoint::pickle::Rules::ZIP);
    }

    #[test]
    fn safetensors_reader_never_panics(truncate in proptest::option::of(any::<usize>()), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let bytes = mutate(safetensors_bytes(), truncate, &flips);
        let _ = plumbline::checkpoint::safetensors::read(Cursor::new(bytes));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = plumbline::checkpoint::pickle::read(&bytes, "data.pkl");
        let _ = plumbline::checkpoint::safetensors::read(Cursor::new(bytes.clone()));
        let _ = plumbline::checkpoint::torch::read(Cursor::new(bytes), plumbline::checkpoint::pickle::Rules::ZIP);
    }
}
