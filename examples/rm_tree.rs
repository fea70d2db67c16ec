//! Times `arca::ops::drill::remove_tree` on a directory (a drill's scratch removal):
//! `cargo run --release --example rm_tree -- DIR`.
fn main() {
    let dir = std::env::args_os().nth(1).expect("DIR");
    let t = std::time::Instant::now();
    arca::ops::drill::remove_tree(std::path::Path::new(&dir)).expect("removal");
    println!("{:.3} s", t.elapsed().as_secs_f64());
}
