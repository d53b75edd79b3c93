//! Fuzz target `request_body`: see `strom_fuzz::request_body`. Run by hand, it reads one input on stdin.

fn main() {
    afl::fuzz!(|data: &[u8]| strom_fuzz::request_body(data));
}
