virt-install --connect qemu:///session --print-xml 1 --dry-run --name vsock --memory 512 --osinfo generic --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2 --vsock cid.auto=yes
