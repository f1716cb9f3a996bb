#!/usr/bin/env bash
# An Auto Scaling group in the target account launching a shared encrypted
# image, driven with the stock `aws` command line client against
# `amishare sim serve` serving testdata/worlds/seed.json: a-admin of
# 111111111111 shares an image encrypted under its key with b-user of
# 222222222222 under the seed's key policy; b-user's group fails to launch
# it (the group launches as B's Auto Scaling service-linked role, which has
# no grant) and b-user may not create the grant; once the key policy lets
# b-user grant to that role, b-user creates the grant with `aws kms
# create-grant` and the group's next launch reaches InService.
#
# Environment: as awscli-seed.sh (AMISHARE_ENDPOINT or AMISHARE_SERVE,
# AWS_CLI, AMISHARE_OWNER_KEY, AMISHARE_TARGET_KEY).
#
# `cargo xtask e2e` runs it after awscli-seed.sh, with the same pinned awscli.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target_arn=arn:aws:iam::222222222222:user/b-user
role_arn=arn:aws:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling
operations="Encrypt Decrypt ReEncryptFrom ReEncryptTo GenerateDataKey GenerateDataKeyWithoutPlaintext DescribeKey CreateGrant"
group=asg-smoke

source "$here/awscli-common.sh"

# ------------------------------------------------------------------ server

start_server

# ------------------------------------------------------------------ owner: the shared image

share_encrypted_copy asg

# ------------------------------------------------------------------ target: a group under the seed's policy

template_id=$(target ec2 create-launch-template --launch-template-name "$group" \
    --launch-template-data "{\"ImageId\":\"$copy\",\"InstanceType\":\"t3.micro\"}" \
    --query LaunchTemplate.LaunchTemplateId)
[[ "$template_id" == lt-* ]] || fail "launch template ID: $template_id"
check "the launch template by name" \
    "$(target ec2 describe-launch-templates --launch-template-names "$group" --query 'LaunchTemplates[0].LaunchTemplateId')" \
    "$template_id"
target autoscaling create-auto-scaling-group --auto-scaling-group-name "$group" \
    --launch-template "LaunchTemplateName=$group,Version=\$Default" \
    --min-size 1 --max-size 1 --desired-capacity 1 --availability-zones "${region}a"
expect_error "a second group of the same name" AlreadyExists \
    target autoscaling create-auto-scaling-group --auto-scaling-group-name "$group" \
    --launch-template "LaunchTemplateName=$group" --min-size 1 --max-size 1 \
    --availability-zones "${region}a"
check "the group launches as the service-linked role" \
    "$(target autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$group" \
        --query 'AutoScalingGroups[0].ServiceLinkedRoleARN')" \
    "$role_arn"
wait_for "the first launch activity" Cancelled Successful \
    target autoscaling describe-scaling-activities --auto-scaling-group-name "$group" \
    --query 'Activities[-1].StatusCode'
message=$(target autoscaling describe-scaling-activities --auto-scaling-group-name "$group" \
    --query 'Activities[-1].StatusMessage')
[[ "$message" == *"Termination Reason: Client.InternalError: Client error on launch" ]] \
    || fail "the activity's message: $message"
checks=$((checks + 1))
echo "ok: the activity says $message"
expect_error "b-user creates the grant under the seed's policy" AccessDeniedException \
    target kms create-grant --key-id "$key_arn" --grantee-principal "$role_arn" \
    --operations $operations

# ------------------------------------------------------------------ owner: allow the grant

owner kms put-key-policy --key-id "$key_id" --policy-name default \
    --policy "file://$here/data/autoscaling-key-policy.json"
expect_error "a grant for another account's role" AccessDeniedException \
    target kms create-grant --key-id "$key_arn" \
    --grantee-principal "arn:aws:iam::333333333333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" \
    --operations $operations
expect_error "a grant with an operation beyond EBS's" AccessDeniedException \
    target kms create-grant --key-id "$key_arn" --grantee-principal "$role_arn" \
    --operations $operations RetireGrant

# ------------------------------------------------------------------ target: the grant, and the next launch

grant=$(target kms create-grant --key-id "$key_arn" --grantee-principal "$role_arn" \
    --operations $operations --name amishare-AWSServiceRoleForAutoScaling \
    --retiring-principal "$target_arn" --query GrantId)
[[ ${#grant} -eq 64 ]] || fail "grant ID: $grant"
check "the target finds its grant on the owner's key" \
    "$(target kms list-retirable-grants --retiring-principal "$target_arn" --query 'Grants[0].[GrantId,KeyId]')" \
    "$grant	$key_arn"
wait_for "the group's instance" InService Terminating \
    target autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$group" \
    --query 'AutoScalingGroups[0].Instances[0].LifecycleState'
check "the newest activity" \
    "$(target autoscaling describe-scaling-activities --auto-scaling-group-name "$group" --query 'Activities[0].StatusCode')" \
    "Successful"
# The aws CLI pages by itself: one activity a page must give every activity once, in order.
activities=$(target autoscaling describe-scaling-activities --auto-scaling-group-name "$group" \
    --query 'Activities[].ActivityId' | tr -s '\t' '\n')
check "the activities a page at a time, each once, in order" \
    "$(target autoscaling describe-scaling-activities --auto-scaling-group-name "$group" \
        --page-size 1 --query 'Activities[].ActivityId' | tr -s '\t' '\n')" \
    "$activities"
check "the groups a page at a time" \
    "$(target autoscaling describe-auto-scaling-groups --page-size 1 --query 'AutoScalingGroups[].AutoScalingGroupName')" \
    "$group"
expect_error "a page of 101 groups" ValidationError \
    target autoscaling describe-auto-scaling-groups --max-records 101

# ------------------------------------------------------------------ cleanup

expect_error "deleting a group with an instance without force" ResourceInUse \
    target autoscaling delete-auto-scaling-group --auto-scaling-group-name "$group"
target autoscaling delete-auto-scaling-group --auto-scaling-group-name "$group" --force-delete
check "the group is gone" \
    "$(target autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$group" --query 'length(AutoScalingGroups)')" \
    "0"
check "its activities stay for a deleted group" \
    "$(target autoscaling describe-scaling-activities --auto-scaling-group-name "$group" --include-deleted-groups --query 'Activities[0].StatusCode')" \
    "Successful"
target ec2 delete-launch-template --launch-template-name "$group" >/dev/null
expect_error "the deleted launch template" InvalidLaunchTemplateName.NotFoundException \
    target ec2 describe-launch-templates --launch-template-names "$group"
owner kms revoke-grant --key-id "$key_arn" --grant-id "$grant"
check "the owner revoked the grant" \
    "$(owner kms list-grants --key-id "$key_arn" --query "length(Grants[?GrantId=='$grant'])")" \
    "0"

saved_world_has "the role and the activities" "\"$role_arn\"" scaling_activities

echo "awscli autoscaling flow: all $checks checks passed in $((SECONDS - started)) s"
