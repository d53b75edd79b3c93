//! Fuzz target `frame`: see `strom_fuzz::frame`. Run by hand, it reads one input on stdin.

fn main() {
    afl::fuzz!(|data: &[u8]| strom_fuzz::frame(data));
}
