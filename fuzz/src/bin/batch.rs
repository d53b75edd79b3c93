//! Fuzz target `batch`: see `strom_fuzz::batch`. Run by hand, it reads one input on stdin.

fn main() {
    afl::fuzz!(|data: &[u8]| strom_fuzz::batch(data));
}
