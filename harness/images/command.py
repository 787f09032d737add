"""`kmschaos images build|status`: the images subcommand's parser (`add_images_parser`,
which the `kmschaos` parser calls) and what each verb prints."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from harness.images.base import BASE_TARBALL
from harness.images.builder import build
from harness.images.names import (
    BASE_OFFLINE,
    KMS_REPO,
    cache_dir,
    engine_client,
    haproxy_image,
    image_present,
    kms_image,
    missing_images,
    toxiproxy_image,
)
from harness.images.progress import ImageBuildError, Log

if TYPE_CHECKING:
    from docker.client import DockerClient


def status(client: DockerClient, out: Log = print) -> int:
    """Print which images exist; 0 when the Docker backend has all it needs (the
    HAProxy image included: load balancers run it)."""
    kms, toxiproxy = kms_image(), toxiproxy_image(client)
    roles = (("kms", kms), ("toxiproxy", toxiproxy), ("haproxy", haproxy_image()))
    for role, ref in (*roles, ("base", BASE_OFFLINE)):
        mark = "present" if image_present(client, ref) else "missing"
        out(f"{role:10} {ref:40} {mark}")
    stale = [
        t
        for img in client.images.list(name=KMS_REPO)
        for t in img.tags
        if t.startswith(KMS_REPO + ":") and t != kms
    ]
    if stale:
        out(f"{len(stale)} older kms image(s) (remove: docker rmi {' '.join(sorted(stale))})")
    tarball = cache_dir() / BASE_TARBALL
    out(f"cache      {cache_dir()} (base tarball {'present' if tarball.exists() else 'absent'})")
    missing = missing_images(client, balancers=True)
    if missing:
        out(f"missing: {', '.join(missing)}; run `make images` (or `make images-offline`)")
        return 1
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    """`kmschaos images build|status`: 0 done (status: every image present), 1 not."""
    try:
        client = engine_client()
        try:
            if args.images_command == "status":
                return status(client)
            build(args.mode or "auto", no_cache=args.no_cache, log=_log, client=client)
        finally:
            client.close()
    except ImageBuildError as e:
        print(f"kmschaos images: {e}", file=sys.stderr)
        return 1
    return 0


def _log(line: str) -> None:
    print(line, flush=True)


def add_images_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `images` (verbs `build`, `status`) to an argparse subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "images",
        help="build the docker backend's images (kms, Toxiproxy, HAProxy), or show which exist",
        description="The docker backend runs three images: kmschaos/kms:<hash of the replica "
        "program>, Toxiproxy and kmschaos/haproxy (load balancers). `build` makes them online "
        "(python:3.12-slim, PyPI and Debian, the official Toxiproxy image) when a registry "
        "answers, else offline (a debootstrapped Debian base, wheels and HAProxy's .deb files "
        "downloaded on the host, Toxiproxy built with Go); it says "
        f"which path it took and why. Cached inputs live in {cache_dir()} ($KMSCHAOS_CACHE).",
    )
    verbs = p.add_subparsers(dest="images_command", metavar="VERB", required=True)
    b = verbs.add_parser("build", help="build the kms, Toxiproxy and HAProxy images")
    how = b.add_mutually_exclusive_group()
    how.add_argument(
        "--offline",
        dest="mode",
        action="store_const",
        const="offline",
        help="no registry: debootstrap base (root once, then cached), host wheels, Go",
    )
    how.add_argument(
        "--online",
        dest="mode",
        action="store_const",
        const="online",
        help="pull the bases and use PyPI; fail rather than fall back to offline",
    )
    b.add_argument(
        "--no-cache",
        action="store_true",
        help="rebuild present images without Docker's layer cache (the cached base "
        "tarball, wheels, Toxiproxy binary and HAProxy packages are still used)",
    )
    verbs.add_parser("status", help="show which images exist (exit 1 if one is missing)")
    p.set_defaults(func=cmd_images, mode=None, no_cache=False)
    return p
