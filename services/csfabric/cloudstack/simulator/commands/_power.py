"""A VM's power: startVirtualMachine and stopVirtualMachine (async, VM.START / VM.STOP)."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._registry import JobPlan, Param, async_api
from csfabric.cloudstack.simulator.commands._vms import VM_ID, find_vm, power_on, render_vm


@async_api(
    "startVirtualMachine",
    "user.vm.StartVMCmd",
    params=(VM_ID,),
    description="Starts a virtual machine.",
)
async def start_vm(call: Call) -> JobPlan:
    vm = find_vm(call)

    async def run() -> Json:
        if vm.state == "Running":
            raise invalid_parameter(f"The virtual machine {vm.id} ({vm.name}) is already running")
        await power_on(call, vm)
        return {"virtualmachine": render_vm(call, vm)}

    desc = f"starting Vm. Vm Id: {vm.id}"
    return JobPlan(run, "VM.START", desc, vm.account_id, "VirtualMachine", vm.id, "VirtualMachine")


@async_api(
    "stopVirtualMachine",
    "user.vm.StopVMCmd",
    params=(VM_ID, Param("forced", "boolean", description="force stop the VM")),
    description="Stops a virtual machine.",
)
async def stop_vm(call: Call) -> JobPlan:
    vm = find_vm(call)

    async def run() -> Json:
        old = vm.state
        vm.state = "Stopping"
        await call.emitter.state(
            "VirtualMachine", vm.id, "StopRequested", old, "Stopping", account_id=vm.account_id
        )
        vm.state = "Stopped"
        await call.emitter.state(
            "VirtualMachine",
            vm.id,
            "OperationSucceeded",
            "Stopping",
            "Stopped",
            account_id=vm.account_id,
        )
        return {"virtualmachine": render_vm(call, vm)}

    return JobPlan(
        run,
        "VM.STOP",
        f"stopping Vm. Vm Id: {vm.id}",
        vm.account_id,
        "VirtualMachine",
        vm.id,
        "VirtualMachine",
    )
