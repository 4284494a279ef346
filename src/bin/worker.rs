//! The scoring worker's entry point (built by Trunk as a Web Worker).

fn main() {
    tracesift_web::worker::start();
}
