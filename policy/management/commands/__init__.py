"""Policy review commands: policy_test, policy_eval, policy_diff, policy_record."""
