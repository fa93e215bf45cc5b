"""`hf-sparse-distill push MODEL_DIR REPO_ID`: publish a student folder to the Hub in one commit, with its card."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("push", help="publish a student folder to the Hub in one commit, with a model card")
    parser.add_argument("model_dir")
    parser.add_argument("repo_id")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", help="branch to push to")
    parser.add_argument("--commit-message", default="Upload sparse DAN student")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--fp16-embeddings", action="store_true", help="store the embedding table in float16")
    parser.add_argument("--results", help="results.json of the distillation run (default: next to the model)")
    parser.add_argument(
        "--dry-run", metavar="DIR", help="write the folder that would be uploaded to DIR; upload nothing"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Upload (or, with `--dry-run`, only assemble) the folder; print the commit URL or the folder."""
    from ..hub import push_student, save_for_hub

    if args.dry_run:
        save_for_hub(args.model_dir, args.dry_run, args.repo_id, args.results, args.fp16_embeddings)
        print(args.dry_run)
        return 0
    url = push_student(
        args.model_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        token=args.token,
        commit_message=args.commit_message,
        fp16_embeddings=args.fp16_embeddings,
        results_path=args.results,
    )
    print(url)
    return 0
