//! Fuzz target `request_header`: see `strom_fuzz::request_header`. Run by hand, it reads one input on stdin.

fn main() {
    afl::fuzz!(|data: &[u8]| strom_fuzz::request_header(data));
}
