//! Generates the Rust code of `idl/ping.thrift` with volo-build: no
//! external Thrift compiler.

fn main() {
    println!("cargo:rerun-if-changed=idl/ping.thrift");
    volo_build::Builder::thrift()
        .add_service("idl/ping.thrift")
        .write()
        .expect("generating the code of idl/ping.thrift");
}
