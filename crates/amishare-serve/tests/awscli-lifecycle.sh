#!/usr/bin/env bash
# A shared encrypted image through its key's lifecycle, driven with the stock
# `aws` command line client against `amishare sim serve` serving
# testdata/worlds/seed.json: a-admin of 111111111111 shares an image encrypted
# under its key with b-user of 222222222222 (the seed's key policy), then
# disables the key, enables it, schedules its deletion and cancels it; after
# each step b-user launches the image, which reaches `running` only while the
# key is enabled and otherwise terminates with Client.InternalError. The key's
# tags and aliases are managed along the way, and b-user may manage none of it.
#
# Environment: as awscli-seed.sh (AMISHARE_ENDPOINT or AMISHARE_SERVE,
# AWS_CLI, AMISHARE_OWNER_KEY, AMISHARE_TARGET_KEY).
#
# `cargo xtask e2e` runs it after awscli-autoscaling.sh, with the same pinned awscli.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

source "$here/awscli-common.sh"

# launch_reaches WHAT STATE: b-user launches the shared copy; it must reach
# STATE (running or terminated), and a terminated one must say why as EC2
# does for a key it cannot use.
launch_reaches() {
    local what=$1 expected=$2 terminal instance reason
    terminal=terminated
    [[ "$expected" == terminated ]] && terminal=running
    instance=$(target ec2 run-instances --image-id "$copy" --instance-type t3.micro \
        --query 'Instances[0].InstanceId')
    wait_for "the launch $what" "$expected" "$terminal" \
        target ec2 describe-instances --instance-ids "$instance" \
        --query 'Reservations[0].Instances[0].State.Name'
    if [[ "$expected" == terminated ]]; then
        reason=$(target ec2 describe-instances --instance-ids "$instance" \
            --query 'Reservations[0].Instances[0].StateReason.Message')
        [[ "$reason" == *"Client.InternalError"* ]] || fail "why the launch $what terminated: $reason"
        checks=$((checks + 1))
        echo "ok: the launch $what terminated: $reason"
    else
        target ec2 terminate-instances --instance-ids "$instance" >/dev/null
    fi
}

key_state() {
    owner kms describe-key --key-id "$key_arn" --query 'KeyMetadata.[KeyState,Enabled]'
}

# ------------------------------------------------------------------ server

start_server

# ------------------------------------------------------------------ owner: the shared image

share_encrypted_copy lifecycle
launch_reaches "with the key enabled" running

# ------------------------------------------------------------------ tags and aliases

owner kms tag-resource --key-id "$key_id" --tags TagKey=team,TagValue=platform TagKey=tier,TagValue=gold
owner kms untag-resource --key-id "$key_id" --tag-keys tier
check "the key's tags" \
    "$(owner kms list-resource-tags --key-id "$key_id" --query 'Tags[].[TagKey,TagValue]')" \
    "team	platform"
owner kms create-alias --alias-name alias/lifecycle --target-key-id "$key_id"
other_arn=$(owner kms create-key --description "amishare lifecycle spare key" --query KeyMetadata.Arn)
owner kms update-alias --alias-name alias/lifecycle --target-key-id "$other_arn"
check "the alias after update-alias" \
    "$(owner kms list-aliases --key-id "$other_arn" --query 'Aliases[].AliasName')" \
    "alias/lifecycle"
check "the first key's aliases" "$(owner kms list-aliases --key-id "$key_id" --query 'length(Aliases)')" 0
owner kms delete-alias --alias-name alias/lifecycle
check "the account's aliases after delete-alias" \
    "$(owner kms list-aliases --query "Aliases[?AliasName=='alias/lifecycle'] | length(@)")" 0
expect_error "b-user tags the owner's key" AccessDeniedException \
    target kms tag-resource --key-id "$key_arn" --tags TagKey=team,TagValue=b

# ------------------------------------------------------------------ disable and enable

expect_error "b-user disables the owner's key" AccessDeniedException \
    target kms disable-key --key-id "$key_arn"
owner kms disable-key --key-id "$key_id"
check "the key after disable-key" "$(key_state)" "Disabled	False"
launch_reaches "with the key disabled" terminated
owner kms enable-key --key-id "$key_id"
check "the key after enable-key" "$(key_state)" "Enabled	True"
launch_reaches "with the key enabled again" running

# ------------------------------------------------------------------ deletion scheduled and cancelled

expect_error "a waiting period of 6 days" ValidationException \
    owner kms schedule-key-deletion --key-id "$key_id" --pending-window-in-days 6
check "schedule-key-deletion" \
    "$(owner kms schedule-key-deletion --key-id "$key_id" --pending-window-in-days 7 \
        --query '[KeyState,PendingWindowInDays]')" \
    "PendingDeletion	7"
check "the key pending deletion" "$(key_state)" "PendingDeletion	False"
launch_reaches "with the key pending deletion" terminated
expect_error "enable-key while deletion is pending" KMSInvalidStateException \
    owner kms enable-key --key-id "$key_id"
expect_error "b-user cancels the deletion" AccessDeniedException \
    target kms cancel-key-deletion --key-id "$key_arn"
owner kms cancel-key-deletion --key-id "$key_id" >/dev/null
check "the key after cancel-key-deletion (as KMS leaves it)" "$(key_state)" "Disabled	False"
expect_error "cancel-key-deletion of a key not pending deletion" KMSInvalidStateException \
    owner kms cancel-key-deletion --key-id "$key_id"
launch_reaches "with the cancelled key still disabled" terminated
owner kms enable-key --key-id "$key_id"
launch_reaches "after enable-key" running

# ------------------------------------------------------------------ saved state

owner kms disable-key --key-id "$key_id"
saved_world_has "the disabled key and its tag" "$key_arn" '"state": "Disabled"' '"team": "platform"'

echo "awscli lifecycle flow: all $checks checks passed in $((SECONDS - started)) s"
