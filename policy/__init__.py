"""Access policy as code (Rego) and the engines that evaluate it; built by the policy issue."""
