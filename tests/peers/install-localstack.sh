#!/usr/bin/env bash
# Installs the strict S3 peer of the tests: LocalStack's S3 (localstack-core), in a venv of
# its own under .peers/localstack/ (Python 3.13, apart from the project's 3.11 venv).
# Idempotent: once installed, it returns at once. `make test` and .ci/run call it.
#
# When it cannot install (no Python 3.13, no uv, no network) it says why and exits 0 on a
# laptop, so `make test` still runs and the s3-strict tests skip with the same reason;
# with CI=true it exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=2026.3.0
# localstack-core pins few versions; resolving as of its release date keeps newer,
# incompatible dependencies out and makes the install reproducible.
EXCLUDE_NEWER=2026-03-25
DEST=.peers/localstack
STAMP="$DEST/.installed-$VERSION"

[ -e "$STAMP" ] && exit 0

give_up() {
    echo "install-localstack: $1" >&2
    echo "install-localstack: the s3-strict tests will be skipped (CI fails them)" >&2
    case "${CI:-}" in 1 | true | yes) exit 1 ;; *) exit 0 ;; esac
}

# A real Python 3.13 (a pyenv shim for a version that is not active does not count).
python=""
for candidate in ${LOCALSTACK_PYTHON:-} /root/.pyenv/versions/3.13.0/bin/python3.13 \
    "$HOME/.pyenv/versions/3.13.0/bin/python3.13" python3.13; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
        python=$candidate
        break
    fi
done
[ -n "$python" ] || give_up "LocalStack needs Python 3.13; none found (set LOCALSTACK_PYTHON=/path/to/python3.13)"

uv=(${UV:-uv})
"${uv[@]}" --version >/dev/null 2>&1 || uv=(python3 -m uv)
"${uv[@]}" --version >/dev/null 2>&1 || give_up "uv not found (make test installs it)"

echo "install-localstack: localstack-core $VERSION into $DEST (Python: $python)"
started=$SECONDS
rm -rf "$DEST"
export UV_PYTHON_DOWNLOADS=never
"${uv[@]}" venv --quiet --python "$python" "$DEST" || give_up "could not create the venv $DEST"
"${uv[@]}" pip install --quiet --python "$DEST/bin/python" --exclude-newer "$EXCLUDE_NEWER" \
    "localstack-core[runtime]==$VERSION" || give_up "could not install localstack-core $VERSION"

# LocalStack builds an index of the AWS service specs at each start (~4 s) unless it finds
# one among its static files: build it once here; tests/peers/localstack.py links it.
static="$DEST/static/usr/lib/localstack"
mkdir -p "$static"
env -i PATH=/usr/bin:/bin HOME="$DEST/static" OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$DEST/static" \
    DISABLE_EVENTS=1 "$DEST/bin/python" -m localstack.aws.spec || give_up "could not index the service specs"

touch "$STAMP"
echo "install-localstack: done in $((SECONDS - started)) s"
