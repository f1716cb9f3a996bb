# Shared by the aws CLI scripts run against `amishare sim serve`
# (awscli-seed.sh, awscli-autoscaling.sh, awscli-lifecycle.sh): the seed
# world's accounts, principals and instance, checks, the CLI as each of the
# seed world's principals, the server, waits for a state, and the world the
# server saved. A script sets `here` (its directory) and sources this file;
# `checks` counts what passed, and `endpoint` is the server's URL after
# `start_server`.

repo=$(cd "$here/../../.." && pwd)
aws_cli=${AWS_CLI:-aws}
owner_key=${AMISHARE_OWNER_KEY:-AKIAAADMINEXAMPLE001}
target_key=${AMISHARE_TARGET_KEY:-AKIABUSEREXAMPLE0001}
region=ap-northeast-1
owner_account=111111111111
target_account=222222222222
seed_instance=i-0c0ffee0123456789
started=$SECONDS

checks=0

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# check WHAT ACTUAL EXPECTED
check() {
    if [[ "$2" != "$3" ]]; then
        fail "$1: expected '$3', got '$2'"
    fi
    checks=$((checks + 1))
    echo "ok: $1 = $2"
}

# expect_error WHAT CODE COMMAND...: the command fails with this AWS error code.
expect_error() {
    local what=$1 code=$2 output
    shift 2
    if output=$("$@" 2>&1); then
        fail "$what: succeeded, expected $code: $output"
    fi
    if [[ "$output" != *"($code)"* ]]; then
        fail "$what: expected error $code, got: $output"
    fi
    checks=$((checks + 1))
    echo "ok: $what fails with $code"
}

# The aws CLI with no configuration but the endpoint, the region and a key.
aws_as() {
    local key=$1
    shift
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL \
        AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY=unchecked \
        AWS_DEFAULT_REGION=$region AWS_CONFIG_FILE=/dev/null \
        AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= AWS_MAX_ATTEMPTS=1 \
        "$aws_cli" --endpoint-url "$endpoint" --output text "$@"
}
owner() { aws_as "$owner_key" "$@"; }
target() { aws_as "$target_key" "$@"; }

# start_server: serves a fresh copy of testdata/worlds/seed.json with
# $AMISHARE_SERVE (stopped on exit), or uses $AMISHARE_ENDPOINT.
start_server() {
    server_pid=
    workdir=
    cleanup() {
        if [[ -n "$server_pid" ]]; then
            kill "$server_pid" 2>/dev/null || true
            wait "$server_pid" 2>/dev/null || true
        fi
        if [[ -n "$workdir" ]]; then
            rm -rf "$workdir"
        fi
    }
    trap cleanup EXIT

    if [[ -z "${AMISHARE_ENDPOINT:-}" ]]; then
        [[ -n "${AMISHARE_SERVE:-}" ]] || fail "set AMISHARE_ENDPOINT, or AMISHARE_SERVE to a serve binary"
        workdir=$(mktemp -d)
        cp "$repo/testdata/worlds/seed.json" "$workdir/world.json"
        read -r -a serve_command <<<"$AMISHARE_SERVE"
        "${serve_command[@]}" --world "$workdir/world.json" --listen 127.0.0.1:0 \
            >"$workdir/stdout" 2>"$workdir/stderr" &
        server_pid=$!
        for _ in $(seq 100); do
            if grep -q '^listening on ' "$workdir/stdout"; then break; fi
            kill -0 "$server_pid" 2>/dev/null || fail "the server exited: $(cat "$workdir/stderr")"
            sleep 0.1
        done
        endpoint=$(sed -n 's/^listening on //p' "$workdir/stdout")
        [[ -n "$endpoint" ]] || fail "the server did not say where it listens"
    else
        endpoint=$AMISHARE_ENDPOINT
    fi
    echo "server: $endpoint; client: $("$aws_cli" --version 2>&1)"
}

# wait_for WHAT EXPECTED TERMINAL COMMAND...: polls every half second (the
# server runs its clock fast) until the command prints EXPECTED; fails at
# once if it prints TERMINAL, and after 60 s. The states seen, in order and
# without repeats, are left in $seen.
seen=
wait_for() {
    local what=$1 expected=$2 terminal=$3 state last=
    shift 3
    seen=
    for _ in $(seq 120); do
        state=$("$@")
        if [[ "$state" != "$last" ]]; then
            seen="${seen:+$seen }$state"
            last=$state
        fi
        if [[ "$state" == "$expected" ]]; then
            checks=$((checks + 1))
            echo "ok: $what reached $state (seen: $seen)"
            return
        fi
        if [[ "$state" == "$terminal" ]]; then
            fail "$what ended $state, expected $expected"
        fi
        sleep 0.5
    done
    fail "$what still $state after 60 s, expected $expected"
}

# saved_world_has WHAT TEXT...: when the script started the server, stops it
# (SIGTERM saves the world) and checks that the saved file holds every TEXT.
saved_world_has() {
    [[ -n "$server_pid" ]] || return 0
    local what=$1 text
    shift
    kill -TERM "$server_pid"
    wait "$server_pid" || fail "the server exited with status $?"
    server_pid=
    for text in "$@"; do
        grep -qF -- "$text" "$workdir/world.json" || fail "the saved world lacks $text"
    done
    checks=$((checks + 1))
    echo "ok: the world saved on shutdown has $what"
}

# share_encrypted_copy NAME: as the owner, a key under the seed's key policy,
# an image of the seed instance, its copy encrypted with the key, and the
# copy's launch permission for the target account, which then sees it. Sets
# `key_arn`, `key_id`, `image` and `copy`; needs `here`, `seed_instance`,
# `owner_account` and `target_account`.
share_encrypted_copy() {
    local name=$1
    key_arn=$(owner kms create-key --description "amishare $name key" --query KeyMetadata.Arn)
    key_id=${key_arn##*/}
    owner kms put-key-policy --key-id "$key_id" --policy-name default \
        --policy "file://$here/data/seed-key-policy.json"
    image=$(owner ec2 create-image --instance-id "$seed_instance" --name "$name-golden" --query ImageId)
    wait_for "image $image" available failed \
        owner ec2 describe-images --image-ids "$image" --query 'Images[0].State'
    copy=$(owner ec2 copy-image --source-image-id "$image" --source-region "$region" \
        --name "$name-golden-encrypted" --encrypted --kms-key-id "$key_arn" --query ImageId)
    wait_for "copy $copy" available failed \
        owner ec2 describe-images --image-ids "$copy" --query 'Images[0].State'
    owner ec2 modify-image-attribute --image-id "$copy" \
        --launch-permission "Add=[{UserId=$target_account}]"
    check "the target sees the shared copy" \
        "$(target ec2 describe-images --image-ids "$copy" --query 'Images[0].OwnerId')" \
        "$owner_account"
}
