virt-install --connect qemu:///session --print-xml 1 --dry-run --name usb-xhci --memory 512 --osinfo generic --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2 --controller usb3
