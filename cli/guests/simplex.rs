//! aiopipe's simplex child: writes one line to stdout and exits 0.

fn main() {
    println!("hi from the child process");
}
