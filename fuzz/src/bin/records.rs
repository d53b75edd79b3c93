//! Fuzz target `records`: see `strom_fuzz::records`. Run by hand, it reads one input on stdin.

fn main() {
    afl::fuzz!(|data: &[u8]| strom_fuzz::records(data));
}
