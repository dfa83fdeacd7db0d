# Python-based test tools, one virtualenv per tool under .venv/<tool>/.
#
#   make tools               all five venvs
#   make tools-moto          .venv/moto        moto[server]
#   make tools-localstack    .venv/localstack  localstack-core[runtime] (host mode)
#   make tools-awscli        .venv/awscli      AWS CLI v1
#   make tools-cfnlint       .venv/cfn-lint    cfn-lint
#   make tools-sam           .venv/sam         aws-sam-cli
#   make tools-clean         remove .venv/ (stop servers first: make tools-down)
#   make tools-versions      print the pinned versions
#
#   make moto-up       [MOTO_PORT=5055]        scripts/moto-up
#   make localstack-up [LOCALSTACK_PORT=4599]  scripts/localstack-up
#   make tools-down                            scripts/tool-down moto + localstack
#   make tools-smoke   [SMOKE_PORT=...]        scripts/aws-smoke against a running server
#
# Exact pins live in scripts/requirements-<tool>.txt; the first requirement of each
# file is the tool itself. A venv is rebuilt from scratch when its requirements file
# changes; otherwise its stamp file makes the target a no-op.

TOOLS_ROOT := $(patsubst %/,%,$(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..))

# Keep the including Makefile's default goal: nothing here should become `make`'s default.
_tools_saved_default_goal := $(.DEFAULT_GOAL)

TOOLS_PYTHON ?= python3
TOOLS_VENV   := $(TOOLS_ROOT)/.venv
TOOLS_REQS   := $(TOOLS_ROOT)/scripts
TOOLS_PIP_FLAGS ?= --quiet --disable-pip-version-check

# $(call tools_pin,PACKAGE,NAME): the version pinned for PACKAGE in requirements-NAME.txt.
tools_pin = $(shell sed -n 's/^$(1)\(\[[a-z,]*\]\)\{0,1\}==//p' $(TOOLS_REQS)/requirements-$(2).txt)
MOTO_VERSION       = $(call tools_pin,moto,moto)
LOCALSTACK_VERSION = $(call tools_pin,localstack-core,localstack)
AWSCLI_VERSION     = $(call tools_pin,awscli,awscli)
CFN_LINT_VERSION   = $(call tools_pin,cfn-lint,cfn-lint)
SAM_VERSION        = $(call tools_pin,aws-sam-cli,sam)

MOTO_SERVER   := $(TOOLS_VENV)/moto/bin/moto_server
LOCALSTACK_PY := $(TOOLS_VENV)/localstack/bin/python
AWS_CLI       := $(TOOLS_VENV)/awscli/bin/aws
CFN_LINT      := $(TOOLS_VENV)/cfn-lint/bin/cfn-lint
SAM           := $(TOOLS_VENV)/sam/bin/sam
export MOTO_SERVER LOCALSTACK_PY AWS_CLI CFN_LINT SAM
# sam would otherwise try to send usage data on every run.
export SAM_CLI_TELEMETRY := 0

MOTO_PORT       ?= 5055
LOCALSTACK_PORT ?= 4599

TOOLS_NAMES := moto localstack awscli cfn-lint sam

# $(call tools_venv,NAME): build .venv/NAME from scripts/requirements-NAME.txt.
define tools_venv
$(TOOLS_VENV)/$(1)/.stamp: $(TOOLS_REQS)/requirements-$(1).txt
	@echo "tools: creating .venv/$(1)"
	@rm -rf $(TOOLS_VENV)/$(1)
	@$(TOOLS_PYTHON) -m venv $(TOOLS_VENV)/$(1)
	@$(TOOLS_VENV)/$(1)/bin/python -m pip install $(TOOLS_PIP_FLAGS) -r $$< \
	  || { echo "tools: pip install for .venv/$(1) failed" >&2; exit 1; }
	@touch $$@
endef
$(foreach t,$(TOOLS_NAMES),$(eval $(call tools_venv,$(t))))

.PHONY: tools tools-moto tools-localstack tools-awscli tools-cfnlint tools-sam tools-clean tools-versions \
        moto-up localstack-up tools-down tools-smoke

tools: tools-moto tools-localstack tools-awscli tools-cfnlint tools-sam ## install all Python test tools into .venv/<tool>/
tools-moto:       $(TOOLS_VENV)/moto/.stamp ## .venv/moto: moto[server]
tools-localstack: $(TOOLS_VENV)/localstack/.stamp ## .venv/localstack: LocalStack host mode
tools-awscli:     $(TOOLS_VENV)/awscli/.stamp ## .venv/awscli: AWS CLI v1
tools-cfnlint:    $(TOOLS_VENV)/cfn-lint/.stamp ## .venv/cfn-lint: cfn-lint
tools-sam:        $(TOOLS_VENV)/sam/.stamp ## .venv/sam: AWS SAM CLI

tools-clean: ## remove the tool virtualenvs (.venv/)
	rm -rf $(TOOLS_VENV)

tools-versions: ## print the pinned tool versions
	@echo "moto $(MOTO_VERSION), localstack-core $(LOCALSTACK_VERSION), awscli $(AWSCLI_VERSION), cfn-lint $(CFN_LINT_VERSION), aws-sam-cli $(SAM_VERSION)"

moto-up: tools-moto ## start moto server on 127.0.0.1 (MOTO_PORT, default 5055)
	@$(TOOLS_ROOT)/scripts/moto-up $(MOTO_PORT)

localstack-up: tools-localstack ## start LocalStack host mode on 127.0.0.1 (LOCALSTACK_PORT, default 4599; LOCALSTACK_SEED=1)
	@$(TOOLS_ROOT)/scripts/localstack-up $(LOCALSTACK_PORT)

tools-down: ## stop moto and LocalStack started by moto-up / localstack-up
	@$(TOOLS_ROOT)/scripts/tool-down moto
	@$(TOOLS_ROOT)/scripts/tool-down localstack

SMOKE_PORT ?= $(LOCALSTACK_PORT)
tools-smoke: tools-awscli ## AWS CLI smoke test of a running moto/LocalStack (SMOKE_PORT, default LOCALSTACK_PORT)
	@$(TOOLS_ROOT)/scripts/aws-smoke $(SMOKE_PORT)

.DEFAULT_GOAL := $(_tools_saved_default_goal)
