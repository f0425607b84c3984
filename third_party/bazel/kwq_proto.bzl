"""C++ messages and gRPC stubs from proto_library targets, with Debian's protoc and
grpc_cpp_plugin (no protobuf or gRPC source tree needed).

    kwq_cc_proto(name = "task_cc_proto", proto = ":task_proto")
    kwq_cc_proto(name = "scheduler_cc_grpc", proto = ":scheduler_proto", grpc = True,
                 deps = [":task_cc_proto"])

Generated headers are included by their import path ("kwq/v1/task.pb.h").
"""

_PROTOC = "/usr/bin/protoc"
_GRPC_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def _import_path(src, root):
    if root and root != "." and src.path.startswith(root + "/"):
        return src.path[len(root) + 1:]
    return src.path

def _cc_proto_gen_impl(ctx):
    info = ctx.attr.proto[ProtoInfo]
    root = info.proto_source_root
    out_root = ctx.bin_dir.path + ("/" + ctx.label.package if ctx.label.package else "")
    hdrs, srcs, rels = [], [], []
    for src in info.direct_sources:
        rel = _import_path(src, root)
        base = rel[:-len(".proto")]
        rels.append(rel)
        hdrs.append(ctx.actions.declare_file(base + ".pb.h"))
        srcs.append(ctx.actions.declare_file(base + ".pb.cc"))
        if ctx.attr.grpc:
            hdrs.append(ctx.actions.declare_file(base + ".grpc.pb.h"))
            srcs.append(ctx.actions.declare_file(base + ".grpc.pb.cc"))
    args = ctx.actions.args()
    for p in info.transitive_proto_path.to_list():
        args.add("-I" + p)
    args.add("-I/usr/include")
    args.add("--cpp_out=" + out_root)
    if ctx.attr.grpc:
        args.add("--plugin=protoc-gen-grpc=" + _GRPC_PLUGIN)
        args.add("--grpc_out=" + out_root)
    args.add_all(rels)
    ctx.actions.run(
        executable = _PROTOC,
        arguments = [args],
        inputs = info.transitive_sources,
        outputs = hdrs + srcs,
        mnemonic = "KwqProtoc",
        progress_message = "protoc %s" % ctx.label,
    )
    return [
        DefaultInfo(files = depset(hdrs + srcs)),
        OutputGroupInfo(hdrs = depset(hdrs), srcs = depset(srcs)),
    ]

_cc_proto_gen = rule(
    implementation = _cc_proto_gen_impl,
    attrs = {
        "proto": attr.label(mandatory = True, providers = [ProtoInfo]),
        "grpc": attr.bool(default = False),
    },
)

def kwq_cc_proto(name, proto, deps = [], grpc = False, visibility = None):
    """A cc_library of the C++ code (and gRPC stubs if `grpc`) generated from `proto`."""
    _cc_proto_gen(name = name + "_gen", proto = proto, grpc = grpc)
    native.filegroup(name = name + "_hdrs", srcs = [":" + name + "_gen"], output_group = "hdrs")
    native.filegroup(name = name + "_srcs", srcs = [":" + name + "_gen"], output_group = "srcs")
    native.cc_library(
        name = name,
        hdrs = [":" + name + "_hdrs"],
        srcs = [":" + name + "_srcs"],
        includes = ["."],
        deps = deps + (["@system//:grpcpp"] if grpc else ["@system//:protobuf"]),
        visibility = visibility,
    )
